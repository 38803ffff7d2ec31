"""The programme codes a policy pack may enable (benefits computes them; audit reads their targets)."""
from __future__ import annotations

KNOWN_PROGRAMS: frozenset[str] = frozenset({
    "industry.crop_livestock", "industry.land_transfer_out", "industry.machinery", "industry.double_rice_oil",
    "industry.deep_poverty_special", "industry.covid_unsold", "industry.relocated_facility",
    "employment.job_subsidy", "employment.workshop_subsidy", "employment.hiring_subsidy", "employment.transport",
    "employment.public_post", "employment.training", "employment.job_referral", "employment.startup",
    "health.insurance_premium", "health.one_stop_settlement", "health.bedridden_nursing", "health.child_rehab",
    "health.chronic_outpatient",
    "housing.renovation", "water.self_supply",
    "education.preschool", "education.boarding", "education.non_boarding", "education.senior_tuition",
    "education.senior_grant", "education.vocational_tuition", "education.vocational_grant",
    "education.university_entry", "education.university_travel", "education.student_loan",
    "safety_net.dibao", "safety_net.tekun", "safety_net.disability", "safety_net.temporary_assistance",
    "credit.microloan", "credit.interest_subsidy",
    "assessment.exit_readiness", "assessment.identification", "assessment.village_exit",
    "assessment.monitoring_risk", "assessment.monitoring_range", "assessment.risk_elimination",
})
