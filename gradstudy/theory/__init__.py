"""Theory the measurements are compared with: mean-field signal propagation (length and
correlation maps, q*, χ₁, depth scales, the order/chaos transition; pure JAX, any
activation), its predictions for an :class:`~gradstudy.families.mlp.MLPSpec` network, and
the closed forms of a product of per-layer factors.
"""

from gradstudy.theory._chain import (
    chain_closed_form as chain_closed_form,
    chain_gradients as chain_gradients,
    first_nonfinite_or_zero as first_nonfinite_or_zero,
    predicted_breakdown_depth as predicted_breakdown_depth,
)
from gradstudy.theory._closed_forms import (
    leaky_relu_chi1 as leaky_relu_chi1,
    leaky_relu_length_map as leaky_relu_length_map,
    linear_chi1 as linear_chi1,
    linear_length_map as linear_length_map,
    relu_chi1 as relu_chi1,
    relu_correlation_map as relu_correlation_map,
    relu_length_map as relu_length_map,
)
from gradstudy.theory._finite_width import (
    LogNormMoments as LogNormMoments,
    finite_width_beta as finite_width_beta,
    relu_backward_log_norm_moments as relu_backward_log_norm_moments,
    relu_layer_log_ratio_moments as relu_layer_log_ratio_moments,
    relu_log_norm_moments as relu_log_norm_moments,
    relu_log_norm_moments_first_order as relu_log_norm_moments_first_order,
    sample_relu_log_norm as sample_relu_log_norm,
)
from gradstudy.theory._mean_field import (
    MeanFieldError as MeanFieldError,
    MeanFieldPoint as MeanFieldPoint,
    backprop_factor_trajectory as backprop_factor_trajectory,
    chi1 as chi1,
    chi_c as chi_c,
    correlation_map as correlation_map,
    critical_sigma_w2 as critical_sigma_w2,
    depth_scale_c as depth_scale_c,
    depth_scale_q as depth_scale_q,
    fixed_point_c as fixed_point_c,
    fixed_point_q as fixed_point_q,
    length_map as length_map,
    mean_field as mean_field,
    mean_field_error as mean_field_error,
    q_trajectory as q_trajectory,
)
from gradstudy.theory._predictions import (
    backprop_factors as backprop_factors,
    backprop_profile as backprop_profile,
    input_sigma_w2 as input_sigma_w2,
    log10_backprop_ratio as log10_backprop_ratio,
    output_variance as output_variance,
    preactivation_q as preactivation_q,
    predicted_jacobian_mean_singular_value as predicted_jacobian_mean_singular_value,
    relu_readout_excess as relu_readout_excess,
    weight_grad_profile as weight_grad_profile,
)
from gradstudy.theory._quadrature import (
    Z_MAX as Z_MAX,
    bivariate_gaussian_expectation as bivariate_gaussian_expectation,
    gauss_hermite as gauss_hermite,
    gaussian_expectation as gaussian_expectation,
)
from gradstudy.theory._recurrent import (
    mean_field_rate as mean_field_rate,
)

__all__ = [
    "LogNormMoments",
    "finite_width_beta",
    "relu_backward_log_norm_moments",
    "relu_layer_log_ratio_moments",
    "relu_log_norm_moments",
    "relu_log_norm_moments_first_order",
    "sample_relu_log_norm",
    "backprop_factor_trajectory",
    "backprop_factors",
    "backprop_profile",
    "bivariate_gaussian_expectation",
    "chain_closed_form",
    "chain_gradients",
    "chi1",
    "chi_c",
    "correlation_map",
    "critical_sigma_w2",
    "depth_scale_c",
    "depth_scale_q",
    "first_nonfinite_or_zero",
    "fixed_point_c",
    "fixed_point_q",
    "gauss_hermite",
    "gaussian_expectation",
    "input_sigma_w2",
    "leaky_relu_chi1",
    "leaky_relu_length_map",
    "length_map",
    "linear_chi1",
    "linear_length_map",
    "log10_backprop_ratio",
    "mean_field",
    "mean_field_error",
    "mean_field_rate",
    "MeanFieldError",
    "MeanFieldPoint",
    "output_variance",
    "preactivation_q",
    "predicted_breakdown_depth",
    "predicted_jacobian_mean_singular_value",
    "q_trajectory",
    "relu_chi1",
    "relu_correlation_map",
    "relu_length_map",
    "relu_readout_excess",
    "weight_grad_profile",
    "Z_MAX",
]
