from django.apps import AppConfig


class AICacheConfig(AppConfig):
    name = "aicache"
    verbose_name = "AI response cache"

    def ready(self) -> None:
        from aicache import checks  # noqa: F401  (registers the system checks)
