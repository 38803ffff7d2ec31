"""`jingzhun audit anomalies` judges with the same settings as the HTTP rules: the monitoring periods
(JZ_AUDIT_MONITORING_LEAD_DAYS, JZ_AUDIT_MONITORING_MEASURE_GRACE_DAYS) were left at their built-in 15 days."""
from __future__ import annotations

from typer.testing import CliRunner

import jingzhun_cli.main as cli


def test_the_command_passes_the_configured_monitoring_periods(monkeypatch, tmp_path):
    seen = {}

    async def fake_find(session, ctx, rules):
        seen["ctx"], seen["rules"] = ctx, rules
        return {"items": [], "counts": {}}

    import services.audit.supervision.anomalies as anomalies
    monkeypatch.setattr(anomalies, "find_anomalies", fake_find)
    monkeypatch.setenv("JZ_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("JZ_AUDIT_MONITORING_LEAD_DAYS", "30")
    monkeypatch.setenv("JZ_AUDIT_MONITORING_MEASURE_GRACE_DAYS", "7")
    result = CliRunner().invoke(cli.app, ["audit", "anomalies", "--as-of", "2021-06-30",
                                          "--rule", "monitoring_lead_not_verified"])
    assert result.exit_code == 0, result.output
    ctx = seen["ctx"]
    assert (ctx.monitoring_lead_days, ctx.monitoring_measure_grace_days) == (30, 7)
    assert str(ctx.as_of) == "2021-06-30" and seen["rules"] == ["monitoring_lead_not_verified"]
