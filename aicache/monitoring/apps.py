from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "aicache.monitoring"
    label = "aicache_monitoring"
    verbose_name = "AI cache monitoring"
    default_auto_field = "django.db.models.BigAutoField"
