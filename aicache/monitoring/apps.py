from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "aicache.monitoring"
    label = "aicache_monitoring"
    verbose_name = "AI cache monitoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from aicache.conf import MONITORING_REQUIRES, require_modules

        require_modules(MONITORING_REQUIRES, "monitoring", "INSTALLED_APPS 'aicache.monitoring'")
        from aicache.monitoring import checks, prometheus  # noqa: F401 - checks register themselves
        from aicache.monitoring.exporter import get_exporter

        get_exporter().add_sink(prometheus.apply)
