"""What each household-snapshot field means, in Chinese and English, for the published contract.

`SnapshotModel` (shared/snapshot.py) writes these into every model's JSON schema, so the
registry's and benefits' /openapi.json carry them; docs/contract.md lists the same fields with
units, examples and the programmes that read them. Keys are (model class, field) where the
class is the one that declares the field (a field of `HouseholdBody` is also one of `Household`
and of the strict `HouseholdCreate`). tests/unit/test_snapshot_contract.py fails when a field a
rule reads has no entry here.

Kept apart from the models so that the model file stays a readable list of fields and types.
"""
from __future__ import annotations

Description = tuple[str, str]  # (中文, English)

DESCRIPTIONS: dict[tuple[str, str], Description] = {
    # --- Village -------------------------------------------------------------------
    ("Village", "code"): ("行政村代码（12位区划代码）", "administrative village code (12-digit area code)"),
    ("Village", "name"): ("行政村名称；南康深度贫困村特别补助按村名匹配", "village name; Nankang's deep-poverty village subsidy is matched by name"),
    ("Village", "township_code"): ("乡镇代码（9位）", "township code (9 digits)"),
    ("Village", "township_name"): ("乡镇名称；隆木乡肉牛补助按乡镇名匹配", "township name; the Longmu beef-cattle subsidy is matched by township name"),
    ("Village", "is_poor_village"): ("是否贫困村", "whether the village is a registered poor village"),
    ("Village", "is_deep_poverty_village"): ("是否深度贫困村（外出务工交通补助更高）", "whether the village is a deep-poverty village (higher transport subsidy)"),
    # --- Income --------------------------------------------------------------------
    ("Income", "year"): ("收入所属年度", "year the income was earned"),
    ("Income", "per_capita_net"): ("家庭人均纯收入（元/人/年）", "household net income per person (yuan per person per year)"),
    # --- Guarantees (两不愁三保障, 八有一超) -------------------------------------------
    ("Guarantees", "food"): ("不愁吃（已走访核实）；空值=未核实", "food secured (verified on a visit); null = not verified"),
    ("Guarantees", "clothing"): ("不愁穿；空值=未核实", "clothing secured; null = not verified"),
    ("Guarantees", "compulsory_education"): ("义务教育有保障；空值=未核实", "compulsory education secured; null = not verified"),
    ("Guarantees", "basic_medical"): ("基本医疗有保障；空值=未核实", "basic medical care secured; null = not verified"),
    ("Guarantees", "housing_safety"): ("住房安全有保障；空值=未核实", "safe housing secured; null = not verified"),
    ("Guarantees", "drinking_water"): ("饮水安全有保障；空值=未核实", "safe drinking water secured; null = not verified"),
    ("Guarantees", "income_source"): ("有稳定收入来源（广西八有一超）；空值=未核实", "stable income source (Guangxi 八有一超); null = not verified"),
    ("Guarantees", "road_access"): ("通路（广西八有一超）；空值=未核实", "road access (Guangxi 八有一超); null = not verified"),
    ("Guarantees", "electricity"): ("通电（广西八有一超）；空值=未核实", "electricity (Guangxi 八有一超); null = not verified"),
    ("Guarantees", "television"): ("有电视（广西八有一超）；空值=未核实", "television reception (Guangxi 八有一超); null = not verified"),
    # --- Housing / water / relocation ----------------------------------------------
    ("Housing", "safety_grade"): ("房屋安全等级（A–D，C/D 为危房）", "house safety grade (A–D; C and D are dilapidated)"),
    ("Housing", "no_house"): ("无房户（按 D 级重建处理）", "household has no house (treated as a D-grade rebuild)"),
    ("Housing", "renovated"): ("危房已改造（改造一户、销档一户）", "dilapidated house already renovated (no second subsidy)"),
    ("Housing", "planned_work"): ("计划改造方式：拆除重建或维修加固", "planned work: rebuild or repair"),
    ("Water", "in_tap_coverage"): ("是否在自来水管网覆盖范围内；空值=未知", "inside tap-water network coverage; null = unknown"),
    ("Water", "planned_well"): ("自建水井类型（深井/手压井），享受自建水源补助", "kind of well the household digs (deep / hand pump), for the self-supply subsidy"),
    ("Relocation", "relocated"): ("易地扶贫搬迁户", "household relocated under poverty relocation (易地扶贫搬迁)"),
    ("Relocation", "moved_in"): ("已搬迁入住", "has moved into the new home"),
    ("Relocation", "site_type"): ("安置点类型：城区工业园/集镇/农村", "resettlement site type: urban park / town / rural"),
    # --- Production -----------------------------------------------------------------
    ("LandRentedOut", "farmland_mu"): ("流转出的耕地面积（亩）", "farmland rented out (mu)"),
    ("LandRentedOut", "mountain_mu"): ("流转出的山地面积（亩）", "mountain land rented out (mu)"),
    ("Machinery", "category"): ("农机品目（每品目限补一台）", "machine category (one machine per category is subsidised)"),
    ("Machinery", "price"): ("购机价格（元）", "purchase price (yuan)"),
    ("Machinery", "national_subsidy"): ("已享受的国家农机购置补贴（元）", "national purchase subsidy already received (yuan)"),
    ("CovidUnsold", "vegetables_mu"): ("2020年疫情期间滞销或损毁蔬菜面积（亩）", "vegetables unsold or destroyed during the 2020 COVID period (mu)"),
    ("CovidUnsold", "pomelo_kg"): ("疫情期间滞销柚子（公斤）", "pomelo unsold during the COVID period (kg)"),
    ("CovidUnsold", "navel_orange_kg"): ("疫情期间滞销脐橙（公斤）", "navel oranges unsold during the COVID period (kg)"),
    ("CovidUnsold", "poultry"): ("疫情期间滞销家禽（羽）", "poultry unsold during the COVID period (birds)"),
    ("CovidUnsold", "fish_mu"): ("疫情期间滞销鱼类养殖水面（亩）", "fish ponds with unsold fish during the COVID period (mu)"),
    ("CovidUnsold", "honey_kg"): ("疫情期间滞销蜂蜜（公斤）", "honey unsold during the COVID period (kg)"),
    ("CovidUnsold", "rabbits"): ("疫情期间滞销兔（只）", "rabbits unsold during the COVID period (head)"),
    ("CovidUnsold", "bamboo_rats"): ("疫情期间滞销竹鼠（只，补助不设上限）", "bamboo rats unsold during the COVID period (head; not capped)"),
    ("RelocatedFacility", "land_rented_in_farmland_mu"): ("搬迁户流转入耕地（亩）", "farmland a relocated household rented in (mu)"),
    ("RelocatedFacility", "land_rented_in_mountain_mu"): ("搬迁户流转入山地（亩）", "mountain land a relocated household rented in (mu)"),
    ("RelocatedFacility", "facility_agriculture_mu"): ("搬迁户新建设施农业大棚（亩）", "new facility-agriculture greenhouses of a relocated household (mu)"),
    ("RelocatedFacility", "herbs_mu"): ("搬迁户种植中药材（亩）", "medicinal herbs planted by a relocated household (mu)"),
    ("RelocatedFacility", "reishi_large_bags"): ("灵芝大袋（袋）", "reishi mushroom large bags (bags)"),
    ("RelocatedFacility", "reishi_small_bags"): ("灵芝小袋（袋）", "reishi mushroom small bags (bags)"),
    ("RelocatedFacility", "processing_equipment_price"): ("购置农产品加工设备价格（元）", "price of farm-produce processing equipment bought (yuan)"),
    ("RelocatedFacility", "aquaculture_facility_m2"): ("新建养殖设施面积（平方米）", "new aquaculture facility area (m²)"),
    ("Production", "crops_mu"): ("种植面积（亩）", "crop area (mu)"),
    ("Production", "poultry"): ("家禽存栏（羽）", "poultry kept (birds)"),
    ("Production", "rabbits"): ("兔存栏（只）", "rabbits kept (head)"),
    ("Production", "pigs_sheep"): ("猪、羊出栏（头）", "pigs and sheep raised (head)"),
    ("Production", "beef_cattle"): ("肉牛存栏（头）", "beef cattle kept (head)"),
    ("Production", "four_fish_mu"): ("四大家鱼养殖水面（亩）", "ponds of the four domestic fish (mu)"),
    ("Production", "special_aquaculture_mu"): ("特种水产养殖水面（亩）", "special aquaculture ponds (mu)"),
    ("Production", "bee_boxes"): ("蜜蜂（箱）", "bee boxes (boxes)"),
    ("Production", "fruit_new_mu"): ("新种果业（亩）", "newly planted orchards (mu)"),
    ("Production", "fruit_tending_mu"): ("果业抚育（亩）", "orchards under tending (mu)"),
    ("Production", "camellia_new_mu"): ("新造油茶（亩）", "newly planted camellia (mu)"),
    ("Production", "camellia_tending_mu"): ("油茶抚育（亩）", "camellia under tending (mu)"),
    ("Production", "double_rice_mu"): ("双季稻种植（亩）", "double-season rice (mu)"),
    ("Production", "oil_crops_mu"): ("油料作物种植（亩）", "oil crops (mu)"),
    ("Production", "herbs_mu"): ("中药材种植（亩）", "medicinal herbs (mu)"),
    ("Production", "special_livestock"): ("特种养殖（只/头）", "special livestock (head)"),
    ("Production", "land_rented_out"): ("土地流转出（耕地、山地）", "land rented out (farmland, mountain land)"),
    ("Production", "machinery"): ("本年购置的农机", "farm machines bought this year"),
    ("Production", "covid_unsold"): ("2020年疫情期间滞销农产品；空值=未申报", "produce unsold during the 2020 COVID period; null = not reported"),
    ("Production", "relocated_facility"): ("搬迁户土地流转与设施农业；空值=未申报", "relocated household's land rented in and facility agriculture; null = not reported"),
    # --- Person and its parts ---------------------------------------------------------
    ("Disability", "grade"): ("残疾等级（1–4级，1、2级为重度）", "disability grade (1–4; 1 and 2 are severe)"),
    ("Disability", "kind"): ("残疾类别", "kind of disability"),
    ("Student", "stage"): ("就读学段", "school stage"),
    ("Student", "boarding"): ("是否寄宿生", "boarding student"),
    ("Student", "special_school"): ("是否特殊教育学校学生", "student of a special-education school"),
    ("Student", "school"): ("就读学校名称（部分高中学费按学校确定）", "school name (some senior-secondary tuition depends on the school)"),
    ("Student", "major_group"): ("中职专业大类（决定免学费标准）", "secondary-vocational major group (sets the tuition waiver)"),
    ("Student", "year_of_study"): ("就读年级（第几学年）", "year of study"),
    ("Student", "admitted_this_year"): ("本年新考入全日制高校", "admitted to a full-time university this year"),
    ("Student", "out_of_province"): ("在省外就读（路费补助更高）", "studies outside the province (higher travel grant)"),
    ("Student", "entry_year"): ("入学年份；2018年秋季以前入学的中职生享受原标准850元", "year the student entered; vocational students who entered before autumn 2018 keep the old 850 rate"),
    ("Student", "need_level"): ("家庭经济困难等级（1–3，学校认定，决定高中助学金档次）", "financial-need tier set by the school (1–3; senior-secondary grant tier)"),
    ("Student", "vocational_tuition"): ("学校核定的中职学费（元/学年），优先于专业大类标准", "vocational tuition set by the school (yuan per school year), overrides the major-group rate"),
    ("Student", "loan_requested"): ("申请生源地助学贷款金额（元）", "student loan requested (yuan)"),
    ("PublicPost", "monthly_pay"): ("公益性岗位月工资（元/月）", "public-welfare post pay (yuan per month)"),
    ("Employment", "place"): ("就业地点：省外/省内跨县/区内园区/本地", "place of work: other province / in province across counties / district park / local"),
    ("Employment", "monthly_wage"): ("月工资（元/月）", "monthly wage (yuan per month)"),
    ("Employment", "contract_months"): ("劳动合同期限（月）", "labour contract length (months)"),
    ("Employment", "months_worked"): ("本年已工作月数", "months worked this year"),
    ("Employment", "workshop"): ("在认定的扶贫车间就业", "works in a recognised poverty workshop (扶贫车间)"),
    ("Employment", "public_post"): ("公益性岗位；空值=非公益性岗位", "public-welfare post; null = not a public post"),
    ("Employment", "key_enterprise_new_hire"): ("重点企业新招用（一次性吸纳就业补贴）", "new hire of a recognised key enterprise (one-off hiring subsidy)"),
    ("Employment", "hired_year"): ("被招用年份；空值=评估年度", "year of hiring; null = the evaluation year"),
    ("Employment", "agency_referral"): ("经人力资源服务机构介绍就业并签订劳动合同", "placed by an HR agency with a labour contract (referral bonus)"),
    ("Employment", "consecutive_months"): ("连续工作月数；空值=取本年已工作月数", "consecutive months worked; null = months worked this year"),
    ("Employment", "self_employed_months"): ("在区内自主创业已正常经营的月数；空值=未创业", "months a business of one's own in the district has run; null = not self-employed"),
    ("Training", "name"): ("培训项目名称", "training course name"),
    ("Training", "days"): ("培训天数", "training days"),
    ("Training", "certified"): ("取得培训合格证书", "training certificate obtained"),
    ("Training", "year"): ("培训年份", "year of the training"),
    ("Training", "subsidy_paid"): ("已领取过培训补贴（终身一次）", "the once-per-lifetime training subsidy was already paid"),
    ("Person", "id"): ("成员编号（登记系统分配）；空值=尚未登记", "member id (assigned by the registry); null = not registered yet"),
    ("Person", "name"): ("姓名", "name"),
    ("Person", "id_number"): ("公民身份号码（18位，输出时脱敏）", "resident identity number (18 characters, masked in output)"),
    ("Person", "sex"): ("性别", "sex"),
    ("Person", "birth_date"): ("出生日期（计算年龄）", "date of birth (gives the age)"),
    ("Person", "relation"): ("与户主关系", "relation to the head of household"),
    ("Person", "labour_capacity"): ("劳动能力", "labour capacity"),
    ("Person", "health"): ("健康状况：健康/慢性病/大病/残疾", "health: healthy / chronic disease / serious illness / disabled"),
    ("Person", "disability"): ("残疾情况；空值=无残疾证", "disability; null = no disability certificate"),
    ("Person", "self_care"): ("生活自理能力：具备/部分丧失/完全丧失", "self-care ability: able / partial loss / full loss"),
    ("Person", "bedridden"): ("经认定的长期卧床失能人员", "recognised long-term bedridden (失能)"),
    ("Person", "student"): ("在校学生情况；空值=非在校生", "schooling; null = not a student"),
    ("Person", "employment"): ("就业情况；空值=未就业", "employment; null = not employed"),
    ("Person", "trainings"): ("参加的职业技能培训", "vocational trainings attended"),
    ("Person", "deceased"): ("已死亡（不再计入享受对象）", "deceased (no longer a beneficiary)"),
    ("Person", "date_of_death"): ("死亡日期", "date of death"),
    ("Person", "rehab_condition"): ("贫困家庭儿童康复救助病种：脑瘫/听障/孤独症/智力障碍（年龄上限见政策包）", "condition of a child in rehabilitation: cerebral palsy / deaf / autism / intellectual (age limit set by the pack)"),
    ("Person", "chronic_outpatient_cost"): ("本年慢性病门诊费用（元），按比例报销并封顶", "chronic-disease outpatient cost this year (yuan), reimbursed at a ratio up to a cap"),
    ("Person", "dibao_covered"): ("是否纳入低保保障：是/否（非整户保）；空值=未说明，户为低保且无人标注时视为纳入", "in the household's 低保 cover: true / false (partial cover, 非整户保); null = not stated, read as covered when the household is 低保 and no member is flagged"),
    ("Person", "tekun"): ("特困人员供养方式：分散供养/集中供养；空值=非特困人员", "特困 person's support: dispersed / concentrated; null = not a 特困 person"),
    ("Person", "monitoring"): ("本人带来的返贫风险（防止返贫监测），只记录事实，不触发补助", "return-to-poverty risks this person carries (monitoring); facts only, no rule pays on them"),
    # --- Household ----------------------------------------------------------------------
    ("HouseholdBody", "region_code"): ("户籍所在区划代码（决定适用政策包）", "area code of the household's registration (selects the policy pack)"),
    ("HouseholdBody", "village"): ("所在行政村", "the household's administrative village"),
    ("HouseholdBody", "status"): ("建档立卡状态：候选/在册/已脱贫/监测/返贫/剔除", "registration status: candidate / registered / exited / monitored / returned / removed"),
    ("HouseholdBody", "identified_year"): ("识别（建档）年份", "year the household was identified as poor"),
    ("HouseholdBody", "exit_date"): ("脱贫日期（决定脱贫后政策延续期）", "exit date (starts the post-exit policy window)"),
    ("HouseholdBody", "categories"): ("户类别：低保、分散/集中供养特困、边缘户、搬迁户、零就业", "household categories: 低保, dispersed / concentrated 特困, marginal, relocated, zero employment"),
    ("HouseholdBody", "dibao_class"): ("低保类别（A1/A2/B/C1/C2，决定每人每月标准）", "低保 class (A1/A2/B/C1/C2; sets the monthly amount per person)"),
    ("HouseholdBody", "poverty_causes"): ("致贫原因", "causes of poverty"),
    ("HouseholdBody", "income"): ("家庭人均纯收入；空值=未核算", "household income per person; null = not assessed"),
    ("HouseholdBody", "guarantees"): ("两不愁三保障（及广西八有一超）核实情况", "verification of the two assurances and three guarantees (and Guangxi 八有一超)"),
    ("HouseholdBody", "housing"): ("住房安全情况", "housing safety"),
    ("HouseholdBody", "water"): ("饮水情况", "drinking water supply"),
    ("HouseholdBody", "relocation"): ("易地扶贫搬迁情况", "poverty relocation"),
    ("HouseholdBody", "production"): ("本年产业生产情况（产业奖补依据）", "this year's farm production (basis of the industry subsidies)"),
    ("HouseholdBody", "members"): ("家庭成员", "household members"),
    ("HouseholdBody", "medical_out_of_pocket_ytd"): ("本年医疗自付费用累计（元），用于返贫监测与临时救助", "medical out-of-pocket spending so far this year (yuan), for monitoring and temporary assistance"),
    ("HouseholdBody", "disaster_this_year"): ("本年遭受自然灾害或意外事故", "hit by a natural disaster or accident this year"),
    ("HouseholdBody", "rigid_expenses"): ("刚性支出（防止返贫监测：因病、因残、因学、因灾、因意外），空值=未报告", "rigid expenses (anti-return-to-poverty monitoring: illness, disability, schooling, disaster, accident); null = not reported"),
    ("RigidExpenses", "year"): ("刚性支出所属年度", "year the rigid expenses were incurred"),
    ("RigidExpenses", "medical"): ("医疗自付支出（元）", "medical spending paid by the household (yuan)"),
    ("RigidExpenses", "schooling"): ("教育支出（元）", "schooling spending (yuan)"),
    ("RigidExpenses", "disaster"): ("自然灾害损失与支出（元）", "natural-disaster losses and spending (yuan)"),
    ("RigidExpenses", "accident"): ("意外事故支出（元）", "accident spending (yuan)"),
    ("RigidExpenses", "disability_care"): ("残疾康复与照护支出（元）", "disability rehabilitation and care spending (yuan)"),
    ("Household", "id"): ("户编号（登记系统分配）；空值=模拟评估", "household id (assigned by the registry); null = a what-if evaluation"),
    ("Household", "version"): ("快照版本号（每次修改加一）", "snapshot version (incremented on every change)"),
}

# Units of numeric fields whose name does not already say them (_mu, _kg, _m2, _months, money).
UNITS: dict[tuple[str, str], str] = {
    ("CovidUnsold", "poultry"): "birds 羽", ("CovidUnsold", "rabbits"): "head 只", ("CovidUnsold", "bamboo_rats"): "head 只",
    ("Production", "poultry"): "birds 羽", ("Production", "rabbits"): "head 只", ("Production", "pigs_sheep"): "head 头",
    ("Production", "beef_cattle"): "head 头", ("Production", "bee_boxes"): "boxes 箱", ("Production", "special_livestock"): "head 只",
    ("RelocatedFacility", "reishi_large_bags"): "bags 袋", ("RelocatedFacility", "reishi_small_bags"): "bags 袋",
    ("Training", "days"): "days 天", ("Employment", "months_worked"): "months 月", ("Student", "year_of_study"): "school year 学年",
}


def description(owner: str, field: str) -> str | None:
    """The schema text "中文 / English" of a field, or None when the field is undocumented."""
    found = DESCRIPTIONS.get((owner, field))
    return f"{found[0]} / {found[1]}" if found else None


__all__ = ["DESCRIPTIONS", "UNITS", "Description", "description"]
