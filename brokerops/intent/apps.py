from django.apps import AppConfig


class IntentConfig(AppConfig):
    name = "brokerops.intent"
    label = "intent"
    verbose_name = "Signals (intent)"
