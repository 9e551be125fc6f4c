"""Built-in passes, one per module; importing this package registers them all."""

from passes.transforms import convert_opset, cse, dce, eliminate_identity, fold_constants, fold_scalar_chains, fold_transpose_into_gemm, fuse_attention, fuse_conv_add, fuse_conv_bn, fuse_conv_mul, fuse_gelu, fuse_gemm_bn, fuse_horizontal, fuse_layer_norm, fuse_matmul_add, fuse_pad_into_conv, fuse_rms_norm, fuse_softmax, infer_shapes, memory_plan, ort_fuse_bias_gelu, ort_fuse_conv_activation, ort_fuse_gemm_activation, ort_fuse_quick_gelu, ort_fuse_skip_layer_norm, ort_nchwc, reorder_for_memory  # noqa: F401
