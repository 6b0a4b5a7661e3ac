"""Model builders, one family per module (``deepcore.models.rnn``, ...). Each returns a :class:`deepcore.core.Layer`."""
