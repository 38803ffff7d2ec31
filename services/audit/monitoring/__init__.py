"""The anti-return-to-poverty monitoring loop as audit sees it (docs/monitoring.md): the registry's
``monitoring.*`` events folded into leads and monitoring objects, and the supervision report over them."""
