"""Measuring instruments: attributions, activations by path, per-layer statistics, calibration, ensembles.

Index:
    saliency, gradient_x_input, smoothgrad, integrated_gradients, attribution_map, completeness_gap,
    steps_for_tolerance                                    input attributions ``(B, ...)`` like the input
    capture, with_capture, split_captured, layer_paths     any layer's outputs by path
    layer_stats, activation_stats, grad_norms              per-layer statistics
    classifier_report, per_class_accuracy, confusion_matrix, calibration_bins, expected_calibration_error,
    max_calibration_error, negative_log_likelihood         classifier calibration
    member_logits, member_probs, ensemble_probs, ensemble_report   population members as an ensemble
    classifier_files(out, probs, labels, names)  calibration.json, reliability.png (and saliency.png) of a run
    reliability_diagram, save_overlays, train_test_curves, training_curves (curves.png)   PNG pictures
    save_forecast                                           forecast.png: history, truth, forecasts, a band

Submodules: ``attribution`` (saliency, gradient x input, SmoothGrad, integrated gradients), ``capture``
(outputs of any layer by path, per-layer statistics), ``calibration`` (per-class accuracy, confusion
matrix, ECE), ``ensembles`` (population members predicting together), ``plots`` (PNG pictures).
"""
from deepcore.interpret.attribution import (attribution_map, completeness_gap, gradient_x_input,  # noqa: F401
                                            integrated_gradients, saliency, smoothgrad, steps_for_tolerance)
from deepcore.interpret.calibration import (calibration_bins, classifier_report, confusion_matrix,  # noqa: F401
                                            expected_calibration_error, max_calibration_error,
                                            negative_log_likelihood, per_class_accuracy)
from deepcore.interpret.capture import (activation_stats, capture, grad_norms, layer_paths,  # noqa: F401
                                        layer_stats, split_captured, with_capture)
from deepcore.interpret.classifier_files import classifier_files  # noqa: F401
from deepcore.interpret.forecast_plot import save_forecast  # noqa: F401
from deepcore.interpret.ensembles import ensemble_probs, ensemble_report, member_logits, member_probs  # noqa: F401
from deepcore.interpret.plots import (reliability_diagram, save_overlays, train_test_curves,  # noqa: F401
                                      training_curves)

__all__ = [
    "saliency", "gradient_x_input", "smoothgrad", "integrated_gradients", "attribution_map", "completeness_gap",
    "steps_for_tolerance", "capture", "with_capture", "split_captured", "layer_paths", "layer_stats",
    "activation_stats", "grad_norms", "classifier_report", "per_class_accuracy", "confusion_matrix",
    "calibration_bins", "expected_calibration_error", "max_calibration_error", "negative_log_likelihood",
    "member_logits", "member_probs", "ensemble_probs", "ensemble_report", "reliability_diagram", "save_overlays",
    "train_test_curves", "training_curves", "classifier_files", "save_forecast",
]
