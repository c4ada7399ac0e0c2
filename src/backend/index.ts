export { tf } from './tf';
export type { Tensor, Tensor1D, Tensor2D, Tensor3D, Tensor4D, Variable } from './tf';
export { Rng } from './rng';
export { initBackend, onBackendReady, BACKEND_ORDER } from './select';
export type { BackendName, BackendInfo } from './select';
export { assertNoTensorLeak } from './leak';
export { gemmInfo, ortAvailable, setGemm, setOrtThreads, defaultOrtThreads, setGemmMinFlops, resetGemmStats, GEMM_NAMES, DEFAULT_MIN_FLOPS } from './gemm';
export type { GemmName, GemmInfo } from './gemm';
export { WASM_THREADS_FINDINGS, setTransposeWrapper, transposeWrapperEnabled } from './wasm-kernels';
