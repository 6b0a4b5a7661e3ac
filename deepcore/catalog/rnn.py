"""Cases for the recurrent layers (:mod:`deepcore.layers.recurrent`) and models (:mod:`deepcore.models.rnn`)."""
from deepcore.catalog.case import Case
from deepcore.layers.recurrent import GRU, LSTM, Bidirectional, GRUCell, LSTMCell, SimpleRNN
from deepcore.models.rnn import char_lm, seq_classifier

LAYER_CASES = [
    Case("simple_rnn", lambda: SimpleRNN(4), (2, 5, 3)),
    Case("lstm", lambda: LSTM(4), (2, 5, 3)),
    Case("lstm_hoisted", lambda: LSTM(4, hoist_input="hoisted"), (2, 5, 3)),
    Case("lstm_peepholes_last", lambda: LSTM(4, peepholes=True, return_sequences=False), (2, 5, 3)),
    Case("lstm_stack2_fused", lambda: LSTM(3, num_layers=2, hoist_input="fused"), (2, 5, 3)),
    Case("gru", lambda: GRU(4), (2, 5, 3)),
    Case("gru_reverse_unroll2", lambda: GRU(3, reverse=True, unroll=2, hoist_input="hoisted"), (2, 5, 3)),
    Case("bidirectional_lstm", lambda: Bidirectional(LSTMCell(3)), (2, 5, 3)),
    Case("bidirectional_gru_last", lambda: Bidirectional(GRUCell(3), return_sequences=False), (2, 5, 3)),
]

MODEL_CASES = [
    Case("lstm_lm", lambda: char_lm(11, embed=6, hidden=8, cell="lstm"), (2, 6), int_max=11),
    Case("gru_lm", lambda: char_lm(11, embed=6, hidden=8, cell="gru", num_layers=2), (2, 6), int_max=11),
    Case("rnn_lm", lambda: char_lm(11, embed=6, hidden=8, cell="rnn"), (2, 6), int_max=11),
    Case("seq_classifier_lstm", lambda: seq_classifier(3, hidden=6, cell="lstm"), (2, 5, 4)),
    Case("seq_classifier_bigru", lambda: seq_classifier(3, hidden=5, cell="gru", bidirectional=True), (2, 5, 4)),
]
