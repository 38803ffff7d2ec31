"""Poverty microcredit for partner banks: eligibility, loan reports, quarterly interest-subsidy claims."""
