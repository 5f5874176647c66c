// Whole-sequence LIF/ALIF kernels for cognet.core.fused (built with torch.utils.cpp_extension).
//
// The equations, their order of floating-point operations and the gradient switches are
// those of cognet/core/functional.py (the reference engine); see the docstring of
// cognet/core/fused.py. Compiled with -ffp-contract=off so that no multiply-add is fused:
// every product and sum is rounded exactly as in the torch reference, which keeps the spikes
// bit-identical wherever the recurrent sums agree.
#include <torch/extension.h>

#include <dlfcn.h>
#include <type_traits>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace {

// The Fortran BLAS that torch itself links (MKL here), called directly for the one dense product
// per backward step: at::addmm_ costs ~10 us of dispatch per call on top of the same BLAS call,
// which at N = 128 was a third of the backward pass. Looked up at run time in the library that
// defines torch's own mm, so a torch build without these symbols falls back to addmm_ (never a
// load failure). Sizes are passed from 64-bit storage: an LP64 BLAS reads the low half
// (little-endian), an ILP64 one all of it, both the same value.
template <typename S>
using FortranGemm = void (*)(const char*, const char*, const void*, const void*, const void*, const S*, const S*,
                             const void*, const S*, const void*, const S*, S*, const void*);

template <typename S>
FortranGemm<S> fortran_gemm() {
  static const FortranGemm<S> fn = []() -> FortranGemm<S> {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    Dl_info info;
    if (!dladdr(reinterpret_cast<void*>(&at::_ops::mm_out::call), &info) || !info.dli_fname) return nullptr;
    void* lib = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (!lib) return nullptr;
    void* f = dlsym(lib, std::is_same<S, float>::value ? "sgemm_" : "dgemm_");
    return reinterpret_cast<FortranGemm<S>>(f);
#else
    return nullptr;
#endif
  }();
  return fn;
}

// c (row-major [rows, cols]) += a (row-major [rows, inner]) @ w (row-major [inner, cols]); false if no
// BLAS symbol was found (the caller then uses addmm_). Column-major view: c^T += w^T a^T.
template <typename S>
bool gemm_acc(int64_t rows, int64_t inner, int64_t cols, const S* a, const S* w, S* c) {
  FortranGemm<S> fn = fortran_gemm<S>();
  if (!fn) return false;
  const int64_t m = cols, n = rows, k = inner;
  const S one = S(1);
  fn("N", "N", &m, &n, &k, &one, w, &m, a, &k, &one, c, &m);
  return true;
}

enum Flags : int64_t {
  RESET_ZERO = 1,
  ADAPTIVE = 2,
  REFRACTORY = 4,
  RECORD = 8,       // keep v and a of every step (returned)
  KEEP_V = 16,      // keep v of every step (needed by the backward of the zero reset)
  DETACH_RESET = 32,
  DETACH_REC = 64,
  LEAK_AWARE = 128,
};

// shape(u), normalised to shape(0) = 1; ids as in fused.py SHAPE_IDS
template <typename S>
inline S shape_fn(int64_t id, S u) {
  switch (id) {
    case 0: {  // triangle
      S t = S(1) - std::abs(u);
      return t > S(0) ? t : S(0);
    }
    case 1: {  // fast-sigmoid
      S d = S(1) + std::abs(u);
      return S(1) / (d * d);
    }
    case 2: {  // sigmoid: 4 s (1 - s), evaluated without overflow
      S s = u >= S(0) ? S(1) / (S(1) + std::exp(-u)) : std::exp(u) / (S(1) + std::exp(u));
      return S(4) * s * (S(1) - s);
    }
    case 3:  // exponential
      return std::exp(-std::abs(u));
    case 4:  // gaussian
      return std::exp(S(-0.5) * u * u);
    default:  // arctan
      return S(1) / (S(1) + u * u);
  }
}

// bit i set where p[i] != 0 (as C++ compares: NaN counts as nonzero), i < NzMask<S>::W
template <typename S>
struct NzMask {
  static constexpr int W = 8;
  static inline uint32_t get(const S* p) {
    uint32_t m = 0;
    for (int i = 0; i < W; ++i) m |= static_cast<uint32_t>(p[i] != S(0)) << i;
    return m;
  }
};
#if defined(__AVX2__)
template <>
struct NzMask<float> {
  static constexpr int W = 8;
  static inline uint32_t get(const float* p) {
    return static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p), _mm256_setzero_ps(), _CMP_NEQ_UQ)));
  }
};
template <>
struct NzMask<double> {
  static constexpr int W = 4;
  static inline uint32_t get(const double* p) {
    return static_cast<uint32_t>(_mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(p), _mm256_setzero_pd(), _CMP_NEQ_UQ)));
  }
};
#endif

// the indices j < n with p[j] != 0, ascending, written to out; returns how many. Whole blocks of
// zeros (most of them at the spike and input densities here) cost one compare each.
template <typename S>
inline int64_t nonzero_list(const S* __restrict__ p, int64_t n, int32_t* __restrict__ out) {
  constexpr int W = NzMask<S>::W;
  int64_t c = 0, j = 0;
  for (; j + W <= n; j += W) {
    uint32_t m = NzMask<S>::get(p + j);
    while (m) {
      out[c++] = static_cast<int32_t>(j + __builtin_ctz(m));
      m &= m - 1;
    }
  }
  for (; j < n; ++j) {
    out[c] = static_cast<int32_t>(j);
    c += p[j] != S(0);
  }
  return c;
}

// spike lists of a [B, N] spike tensor: idx[b * N + k], k < cnt[b]
template <typename S>
inline int64_t spike_lists(const S* __restrict__ z, int64_t B, int64_t N, int32_t* __restrict__ idx,
                           int64_t* __restrict__ cnt) {
  int64_t total = 0;
  for (int64_t b = 0; b < B; ++b) {
    cnt[b] = nonzero_list<S>(z + b * N, N, idx + b * N);
    total += cnt[b];
  }
  return total;
}

// dst[n] = (((dst[n] + c_0 src_0[n]) + c_1 src_1[n]) + ...) for n0 <= n < n1: the same running
// sums, rounded in the same order, as K passes of dst[n] += c_k src_k[n] (c_k == 1 adds src_k as
// is, which is the same value), but blocked: the running sums of a block of entries stay in
// registers over all K sources and dst is read and written once, not K times.
template <typename S, int64_t BL>
inline int64_t add_blocks(S* __restrict__ dst, int64_t n, int64_t n1, int64_t K, const S* const* src,
                          const S* coef) {
  for (; n + BL <= n1; n += BL) {
    S acc[BL];
    for (int64_t l = 0; l < BL; ++l) acc[l] = dst[n + l];
    for (int64_t k = 0; k < K; ++k) {
      const S* __restrict__ sk = src[k] + n;
      const S ck = coef[k];
      if (ck == S(1)) {
        for (int64_t l = 0; l < BL; ++l) acc[l] += sk[l];
      } else {
        for (int64_t l = 0; l < BL; ++l) acc[l] += ck * sk[l];
      }
    }
    for (int64_t l = 0; l < BL; ++l) dst[n + l] = acc[l];
  }
  return n;
}

template <typename S>
inline void add_rows_blocked(S* __restrict__ dst, int64_t n0, int64_t n1, int64_t K, const S* const* src,
                             const S* coef) {
  int64_t n = add_blocks<S, 256 / sizeof(S)>(dst, n0, n1, K, src, coef);  // 64 floats: eight AVX2 registers
  n = add_blocks<S, 32 / sizeof(S)>(dst, n, n1, K, src, coef);           // the rest, a register at a time
  for (; n < n1; ++n) {
    S a = dst[n];
    for (int64_t k = 0; k < K; ++k) a += coef[k] == S(1) ? src[k][n] : coef[k] * src[k][n];
    dst[n] = a;
  }
}

// out[b, :] += sum_k z[b, j_k] rows[j_k, :] over the spike list of row b (the recurrent input),
// one blocked pass over out[b] per row
template <typename S>
inline void accumulate_rows(int64_t b0, int64_t b1, int64_t N, const S* __restrict__ z, const int32_t* idx,
                            const int64_t* cnt, const S* __restrict__ rows, S* __restrict__ out) {
  std::vector<const S*> src(N);
  std::vector<S> coef(N);
  for (int64_t b = b0; b < b1; ++b) {
    const int32_t* ib = idx + b * N;
    for (int64_t k = 0; k < cnt[b]; ++k) {
      src[k] = rows + static_cast<int64_t>(ib[k]) * N;
      coef[k] = z[b * N + ib[k]];
    }
    add_rows_blocked<S>(out + b * N, 0, N, cnt[b], src.data(), coef.data());
  }
}

// sum_i a[i] b[i] with 32 independent partial sums: vectorisable without reassociating any one
// sum, and four vector registers of them, so that the additions do not wait on each other's
// latency (the result differs from a BLAS dot only in the order of the additions)
template <typename S>
inline S dot32(const S* __restrict__ a, const S* __restrict__ b, int64_t n) {
  constexpr int L = 32;
  S acc[L];
  for (int l = 0; l < L; ++l) acc[l] = S(0);
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; ++l) acc[l] += a[i + l] * b[i + l];
  for (int h = L / 2; h > 0; h /= 2)
    for (int l = 0; l < h; ++l) acc[l] += acc[l + h];
  S s = acc[0];
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// c[b, j] += dv[b, :] . wt[j, :] (= (dv W)[b, j]) only for the listed j of each row b: the entries
// of dL/dz[t-1] that the next backward step multiplies by a nonzero surrogate derivative
template <typename S>
inline void masked_product(int64_t b0, int64_t b1, int64_t N, const S* __restrict__ dv, const S* __restrict__ wt,
                           const int32_t* idx, const int64_t* cnt, S* __restrict__ c) {
  for (int64_t b = b0; b < b1; ++b) {
    const int32_t* ib = idx + b * N;
    const S* __restrict__ d = dv + b * N;
    for (int64_t k = 0; k < cnt[b]; ++k) {
      const int64_t j = ib[k];
      c[b * N + j] += dot32<S>(d, wt + j * N, N);
    }
  }
}

template <typename S>
struct Consts {
  const S *alpha, *rho, *vth, *beta, *nref;
};

// one forward step for rows b0..b1; x is written to xs (-inf where refractory: shape(-inf) = 0)
template <typename S, bool RZ, bool AD, bool RF>
void step_rows(int64_t b0, int64_t b1, int64_t N, Consts<S> c, const S* __restrict__ ct,
               const S* __restrict__ rec, const S* __restrict__ zp, S* __restrict__ v, S* __restrict__ a,
               S* __restrict__ r, S* __restrict__ zt, S* __restrict__ xs) {
  const S* __restrict__ alpha = c.alpha;
  const S* __restrict__ rho = c.rho;
  const S* __restrict__ vth = c.vth;
  const S* __restrict__ beta = c.beta;
  const S* __restrict__ nref = c.nref;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t o = b * N;
    for (int64_t n = 0; n < N; ++n) {
      const int64_t k = o + n;
      const S zpk = zp[k];
      S vn;
      if (RZ)
        vn = alpha[n] * v[k] * (S(1) - zpk) + ct[k] + rec[k];
      else
        vn = alpha[n] * v[k] + ct[k] + rec[k] - vth[n] * zpk;
      S x;
      if (AD) {
        const S an = rho[n] * a[k] + zpk;
        a[k] = an;
        x = (vn - vth[n] - beta[n] * an) / vth[n];
      } else {
        x = (vn - vth[n]) / vth[n];
      }
      S zn = x > S(0) ? S(1) : S(0);
      if (RF) {  // selects only, no branch: the loop vectorises (same values as the nested form)
        const S rk = r[k];
        const bool free = rk == S(0);
        zn = free ? zn : S(0);
        const S down = rk - S(1);
        const S hold = nref[n] - S(1);
        const S down0 = down > S(0) ? down : S(0);
        const S hold0 = hold > S(0) ? hold : S(0);
        r[k] = zn > S(0) ? hold0 : down0;
        x = free ? x : -std::numeric_limits<S>::infinity();
      }
      zt[k] = zn;
      v[k] = vn;
      xs[k] = x;
    }
  }
}

template <typename S, int SHAPE>
void shape_rows(int64_t n, S* __restrict__ x, S inv_width, S width, S peak) {
  for (int64_t k = 0; k < n; ++k) x[k] = peak * shape_fn<S>(SHAPE, x[k] / width);
}

template <typename S>
void shape_pass(int64_t shape_id, int64_t n, S* x, S width, S peak) {
  switch (shape_id) {
    case 0: shape_rows<S, 0>(n, x, S(1) / width, width, peak); break;
    case 1: shape_rows<S, 1>(n, x, S(1) / width, width, peak); break;
    case 2: shape_rows<S, 2>(n, x, S(1) / width, width, peak); break;
    case 3: shape_rows<S, 3>(n, x, S(1) / width, width, peak); break;
    case 4: shape_rows<S, 4>(n, x, S(1) / width, width, peak); break;
    default: shape_rows<S, 5>(n, x, S(1) / width, width, peak); break;
  }
}

template <typename S>
using StepFn = void (*)(int64_t, int64_t, int64_t, Consts<S>, const S*, const S*, const S*, S*, S*, S*, S*, S*);

template <typename S>
StepFn<S> pick_step(bool rz, bool ad, bool rf) {
  const int key = (rz ? 4 : 0) | (ad ? 2 : 0) | (rf ? 1 : 0);
  switch (key) {
    case 0: return step_rows<S, false, false, false>;
    case 1: return step_rows<S, false, false, true>;
    case 2: return step_rows<S, false, true, false>;
    case 3: return step_rows<S, false, true, true>;
    case 4: return step_rows<S, true, false, false>;
    case 5: return step_rows<S, true, false, true>;
    case 6: return step_rows<S, true, true, false>;
    default: return step_rows<S, true, true, true>;
  }
}

inline int64_t grain_rows(int64_t N) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(N, 1)); }

// The nonzero entries of the input spikes x [R, K] (row r = step t, trial b: r = t B + b), as
// row pointers ptr [R + 1] and column indices idx (ascending within a row); one scan of x.
// Stops, returning false, as soon as more than dense_at entries are nonzero (the caller then
// projects with one matmul): the same decision as counting all of them first.
template <typename S>
bool scan_events(const S* __restrict__ x, int64_t R, int64_t K, double dense_at, int64_t* __restrict__ ptr,
                 int32_t* __restrict__ idx) {
  int64_t c = 0;
  ptr[0] = 0;
  for (int64_t r = 0; r < R; ++r) {
    c += nonzero_list<S>(x + r * K, K, idx + c);  // idx has room for K past the limit
    ptr[r + 1] = c;
    if (static_cast<double>(c) > dense_at) return false;
  }
  return true;
}

// The event lists of the input spikes, for the fused input projection (see fused.py).
template <typename S>
struct InputEvents {
  const S* x;          // [R, K] input values
  const int64_t* ptr;  // [R + 1] row pointers into idx
  const int32_t* idx;  // nonzero columns of each row, ascending
  const S* wt;         // W_in^T [K, N] (row j = the weights out of input j); forward only
  int64_t K;
};

// o[0:N] = sum over the row's events, in index order, of x[r, j] W_in[:, j], starting from 0:
// the arithmetic of the event-driven projection (a float xv == 1 adds the column as is)
template <typename S>
inline void project_row(const InputEvents<S>& in, int64_t r, int64_t N, S* __restrict__ o) {
  std::memset(o, 0, sizeof(S) * N);
  const S* xr = in.x + r * in.K;
  const int64_t e0 = in.ptr[r], K = in.ptr[r + 1] - e0;
  if (K == 0) return;
  thread_local std::vector<const S*> src;
  thread_local std::vector<S> coef;
  src.resize(K);
  coef.resize(K);
  for (int64_t e = 0; e < K; ++e) {
    const int64_t j = in.idx[e0 + e];
    src[e] = in.wt + j * N;
    coef[e] = xr[j];
  }
  add_rows_blocked<S>(o, 0, N, K, src.data(), coef.data());
}

template <typename S>
void forward_impl(int64_t T, const at::Tensor& cur, const InputEvents<S>* in, const at::Tensor& w,
                  const at::Tensor& v0, const at::Tensor& a0, const at::Tensor& z0, const at::Tensor& r0,
                  const at::Tensor& alpha_t, const at::Tensor& rho_t, const at::Tensor& vth_t,
                  const at::Tensor& beta_t, const at::Tensor& nref_t, int64_t flags, int64_t shape_id,
                  double width_d, double peak_d, double dense_thr, std::vector<at::Tensor>& out) {
  // the input currents: cur [T, B, N], or (in != nullptr) projected from the input events
  // step by step into a [B, N] buffer, right before the step reads them
  const int64_t B = v0.size(0), N = v0.size(1), BN = B * N;
  const bool reset_zero = flags & RESET_ZERO, adaptive = flags & ADAPTIVE, refractory = flags & REFRACTORY;
  const bool record = flags & RECORD, keep_v = (flags & KEEP_V) || record;
  auto opts = v0.options();
  at::Tensor z = at::empty({T, B, N}, opts), sd = at::empty({T, B, N}, opts);
  at::Tensor vall = keep_v ? at::empty({T, B, N}, opts) : at::empty({0}, opts);
  at::Tensor aall = record ? at::empty({T, B, N}, opts) : at::empty({0}, opts);
  at::Tensor wt = w.t().contiguous();  // row j = column j of W: the weights out of neuron j
  at::Tensor v = v0.clone(), a = a0.clone(), r = r0.clone(), z0c = z0.contiguous();
  at::Tensor rec_t = at::empty({B, N}, opts);
  S *vp = v.data_ptr<S>(), *ap = a.data_ptr<S>(), *rp = r.data_ptr<S>(), *rec = rec_t.data_ptr<S>();
  Consts<S> c{alpha_t.data_ptr<S>(), rho_t.data_ptr<S>(), vth_t.data_ptr<S>(), beta_t.data_ptr<S>(),
              nref_t.data_ptr<S>()};
  at::Tensor proj_t = in ? at::empty({B, N}, opts) : at::empty({0}, opts);
  const S* wtp = wt.data_ptr<S>();
  const S* curp = in ? nullptr : cur.data_ptr<S>();
  S* proj = in ? proj_t.data_ptr<S>() : nullptr;
  S *zo = z.data_ptr<S>(), *sdo = sd.data_ptr<S>();
  S* vo = keep_v ? vall.data_ptr<S>() : nullptr;
  S* ao = record ? aall.data_ptr<S>() : nullptr;
  const S width = static_cast<S>(width_d), peak = static_cast<S>(peak_d);
  std::vector<int32_t> idx(BN);
  std::vector<int64_t> cnt(B);
  const S* zp = z0c.data_ptr<S>();
  int64_t nnz = spike_lists(zp, B, N, idx.data(), cnt.data());
  const double dense_at = dense_thr * static_cast<double>(BN);
  StepFn<S> step = pick_step<S>(reset_zero, adaptive, refractory);
  const int64_t grain = grain_rows(N);
  for (int64_t t = 0; t < T; ++t) {
    // recurrent input W z[t-1]: from the columns of the neurons that spiked, or one matmul
    const bool dense = static_cast<double>(nnz) > dense_at;
    if (dense) at::mm_out(rec_t, t > 0 ? z.select(0, t - 1) : z0c, wt);
    const S* ct = in ? proj : curp + t * BN;
    S* zt = zo + t * BN;
    S* st = sdo + t * BN;
    at::parallel_for(0, B, grain, [&](int64_t b0, int64_t b1) {
      if (in)
        for (int64_t b = b0; b < b1; ++b) project_row<S>(*in, t * B + b, N, proj + b * N);
      if (!dense) {
        std::memset(rec + b0 * N, 0, sizeof(S) * (b1 - b0) * N);
        accumulate_rows<S>(b0, b1, N, zp, idx.data(), cnt.data(), wtp, rec);
      }
      step(b0, b1, N, c, ct, rec, zp, vp, ap, rp, zt, st);
      shape_pass<S>(shape_id, (b1 - b0) * N, st + b0 * N, width, peak);
    });
    if (keep_v) std::memcpy(vo + t * BN, vp, sizeof(S) * BN);
    if (record) std::memcpy(ao + t * BN, ap, sizeof(S) * BN);
    zp = zt;
    nnz = spike_lists(zp, B, N, idx.data(), cnt.data());
  }
  out = {z, sd, vall, aall, v, a, r};
}

// one backward step for rows b0..b1 (see fused.py for the equations)
template <typename S, bool RZ, bool AD, bool DRES, bool LEAK>
void back_rows(int64_t b0, int64_t b1, int64_t N, Consts<S> c, const S* __restrict__ sdt,
               const S* __restrict__ fp, const S* __restrict__ zprev, const S* __restrict__ vprev,
               S* __restrict__ cv, S* __restrict__ ca, S* __restrict__ cz, S* __restrict__ dv) {
  const S* __restrict__ alpha = c.alpha;
  const S* __restrict__ rho = c.rho;
  const S* __restrict__ vth = c.vth;
  const S* __restrict__ beta = c.beta;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t o = b * N;
    for (int64_t n = 0; n < N; ++n) {
      const int64_t k = o + n;
      S g = cz[k];
      if (LEAK) g = g * fp[k];
      const S gxv = g * sdt[k] / vth[n];  // dL/dv through the spike of this step
      const S dvk = cv[k] + gxv;
      dv[k] = dvk;
      S dak = ca[k];
      if (AD) dak -= gxv * beta[n];
      const S zk = zprev[k];
      cv[k] = RZ ? alpha[n] * (S(1) - zk) * dvk : alpha[n] * dvk;
      S czk = AD ? dak : S(0);  // a[t] = rho a[t-1] + z[t-1] always keeps its gradient
      if (!DRES) czk += RZ ? -(alpha[n] * vprev[k]) * dvk : -vth[n] * dvk;
      cz[k] = czk;
      ca[k] = AD ? rho[n] * dak : dak;
    }
  }
}

template <typename S>
using BackFn = void (*)(int64_t, int64_t, int64_t, Consts<S>, const S*, const S*, const S*, const S*, S*, S*, S*,
                        S*);

template <typename S, bool RZ, bool AD>
BackFn<S> pick_back2(bool dres, bool leak) {
  if (dres) return leak ? back_rows<S, RZ, AD, true, true> : back_rows<S, RZ, AD, true, false>;
  return leak ? back_rows<S, RZ, AD, false, true> : back_rows<S, RZ, AD, false, false>;
}

template <typename S>
BackFn<S> pick_back(bool rz, bool ad, bool dres, bool leak) {
  if (rz) return ad ? pick_back2<S, true, true>(dres, leak) : pick_back2<S, true, false>(dres, leak);
  return ad ? pick_back2<S, false, true>(dres, leak) : pick_back2<S, false, false>(dres, leak);
}

template <typename S>
inline void add_into(S* __restrict__ dst, const S* __restrict__ src, int64_t n) {
  for (int64_t k = 0; k < n; ++k) dst[k] += src[k];
}

// gt[i, :] += pre_b[i] p[b, :] for every event i in the list of row b (lists[b], cnt[b] entries,
// ascending; pre_b = pre_rows[b], p [B, N]). Every entry gt[i, n] sums its events in ascending b,
// as a loop over b then i would; here the events are regrouped by i (a counting sort that keeps b
// ascending), so that each row of gt is read and written once with its events summed in
// registers (add_rows_blocked), and the columns are split over threads: the same sums at any
// thread count.
template <typename S>
void scatter_lists(int64_t B, int64_t M, const int32_t* const* lists, const int64_t* cnt, const S* const* pre_rows,
                   const S* __restrict__ p, int64_t N, S* __restrict__ gt) {
  std::vector<int64_t> start(M + 1, 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t e = 0; e < cnt[b]; ++e) ++start[lists[b][e] + 1];
  for (int64_t i = 0; i < M; ++i) start[i + 1] += start[i];
  const int64_t total = start[M];
  if (total == 0) return;
  std::vector<const S*> src(total);
  std::vector<S> coef(total);
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t e = 0; e < cnt[b]; ++e) {
      const int64_t i = lists[b][e];
      const int64_t at = fill[i]++;
      src[at] = p + b * N;
      coef[at] = pre_rows[b][i];
    }
  at::parallel_for(0, N, 256, [&](int64_t n0, int64_t n1) {
    for (int64_t i = 0; i < M; ++i) {
      const int64_t k0 = start[i], K = start[i + 1] - k0;
      if (K) add_rows_blocked<S>(gt + i * N, n0, n1, K, src.data() + k0, coef.data() + k0);
    }
  });
}

// scatter_lists for spike lists as spike_lists writes them (idx[b * M + e], pre [B, M])
template <typename S>
void scatter_events(const S* __restrict__ pre, int64_t B, int64_t M, const int32_t* idx, const int64_t* cnt,
                    const S* __restrict__ p, int64_t N, S* __restrict__ gt) {
  std::vector<const int32_t*> lists(B);
  std::vector<const S*> rows(B);
  for (int64_t b = 0; b < B; ++b) {
    lists[b] = idx + b * M;
    rows[b] = pre + b * M;
  }
  scatter_lists<S>(B, M, lists.data(), cnt, rows.data(), p, N, gt);
}

// scatter_lists for the input events of rows r0 .. r0 + R - 1 (p [R, N]): gt[j, :] += x[r, j]
// p[r - r0, :] over each row's events, r ascending for each j (the input projection's dW_in^T)
template <typename S>
void scatter_inputs(const InputEvents<S>& in, int64_t r0, int64_t R, const S* __restrict__ p, int64_t N,
                    S* __restrict__ gt) {
  std::vector<const int32_t*> lists(R);
  std::vector<int64_t> cnt(R);
  std::vector<const S*> rows(R);
  for (int64_t q = 0; q < R; ++q) {
    const int64_t r = r0 + q;
    lists[q] = in.idx + in.ptr[r];
    cnt[q] = in.ptr[r + 1] - in.ptr[r];
    rows[q] = in.x + r * in.K;
  }
  scatter_lists<S>(R, in.K, lists.data(), cnt.data(), rows.data(), p, N, gt);
}

template <typename S>
void backward_impl(const at::Tensor& gz, const at::Tensor& gv, const at::Tensor& ga, const at::Tensor& gvT,
                   const at::Tensor& gaT, const at::Tensor& z, const at::Tensor& sd, const at::Tensor& vall,
                   const at::Tensor& v0, const at::Tensor& z0, const at::Tensor& factor, const at::Tensor& w,
                   const at::Tensor& alpha_t, const at::Tensor& rho_t, const at::Tensor& vth_t,
                   const at::Tensor& beta_t, int64_t flags, double dense_thr, double back_thr,
                   const InputEvents<S>* in, const at::Tensor& readout, const at::Tensor& gf,
                   std::vector<at::Tensor>& out) {
  // in == nullptr: returns dL/dI [T, B, N] (= dv of every step); else the weight gradient of the
  // input projection, dW_in^T[j, :] += x[t, b, j] dv[t][b, :] from each step's dv, and no dI.
  // readout M [W, T] with gf = dL/d(filtered) [W, B, N] (filtered[w] = sum_t M[w, t] z[t]; both
  // empty: none): dL/dz[t] += sum_w M[w, t] gf[w], added step by step (no [T, B, N] tensor)
  const int64_t T = z.size(0), B = z.size(1), N = z.size(2), BN = B * N;
  const bool reset_zero = flags & RESET_ZERO, adaptive = flags & ADAPTIVE;
  const bool detach_reset = flags & DETACH_RESET, detach_rec = flags & DETACH_REC, leak = flags & LEAK_AWARE;
  auto opts = z.options();
  at::Tensor di = in ? at::empty({B, N}, opts) : at::empty({T, B, N}, opts);
  at::Tensor dwint = in ? at::zeros({in->K, N}, opts) : at::empty({0}, opts);
  at::Tensor dwt = at::zeros({N, N}, opts);  // dW^T: row j collects the gradient of column j
  at::Tensor cv_t = gvT.numel() ? gvT.clone() : at::zeros({B, N}, opts);
  at::Tensor ca_t = gaT.numel() ? gaT.clone() : at::zeros({B, N}, opts);
  at::Tensor cz_t = at::zeros({B, N}, opts);
  S *cv = cv_t.data_ptr<S>(), *ca = ca_t.data_ptr<S>(), *cz = cz_t.data_ptr<S>();
  const S* gzp = gz.numel() ? gz.data_ptr<S>() : nullptr;
  // gz [N]: the same dL/dz for every step and trial (a rate regulariser's), added to each row
  const bool gz_row = gz.numel() && gz.dim() == 1;
  TORCH_CHECK(!gz_row || gz.size(0) == N, "backward: a per-neuron dL/dz must have N entries");
  const S* gvp = gv.numel() ? gv.data_ptr<S>() : nullptr;
  const S* gap = ga.numel() ? ga.data_ptr<S>() : nullptr;
  const int64_t W = gf.numel() ? readout.size(0) : 0;
  TORCH_CHECK(!W || (readout.is_contiguous() && gf.is_contiguous() && readout.size(1) == T && gf.size(0) == W &&
                     gf.numel() == W * BN),
              "backward: readout must be [W, T] and its gradient [W, B, N], contiguous");
  const S* Mp = W ? readout.data_ptr<S>() : nullptr;
  const S* gfp = W ? gf.data_ptr<S>() : nullptr;
  const S *zpt = z.data_ptr<S>(), *sdp = sd.data_ptr<S>();
  const S* vallp = vall.numel() ? vall.data_ptr<S>() : nullptr;
  const S *v0p = v0.data_ptr<S>(), *z0p = z0.data_ptr<S>();
  const S* fp = leak ? factor.data_ptr<S>() : nullptr;
  Consts<S> c{alpha_t.data_ptr<S>(), rho_t.data_ptr<S>(), vth_t.data_ptr<S>(), beta_t.data_ptr<S>(), nullptr};
  S *dip = di.data_ptr<S>(), *dwtp = dwt.data_ptr<S>();
  at::Tensor wc = w.contiguous();
  const S* wp = wc.data_ptr<S>();
  std::vector<int32_t> idx(BN);
  std::vector<int64_t> cnt(B);
  const double dense_at = dense_thr * static_cast<double>(BN);
  // dv[t] W is needed only where sd[t-1] != 0 (dL/dz[t-1] reaches the loss through
  // sd[t-1] alone): those entries as dot products while at most back_thr of sd[t-1] is nonzero
  const double back_at = back_thr * static_cast<double>(BN);
  at::Tensor wt_t = (!detach_rec && back_thr > 0) ? w.t().contiguous() : at::empty({0}, opts);
  const S* wtp = wt_t.numel() ? wt_t.data_ptr<S>() : nullptr;
  std::vector<int32_t> sidx(wtp ? BN : 0);
  std::vector<int64_t> scnt(wtp ? B : 0);
  const bool need_v = reset_zero && !detach_reset;
  BackFn<S> step = pick_back<S>(reset_zero, adaptive, detach_reset, leak);
  const int64_t grain = grain_rows(N);
  for (int64_t t = T - 1; t >= 0; --t) {
    const S* zprev = t > 0 ? zpt + (t - 1) * BN : z0p;
    const S* vprev = need_v ? (t > 0 ? vallp + (t - 1) * BN : v0p) : nullptr;
    const S* sdt = sdp + t * BN;
    S* dv = in ? dip : dip + t * BN;
    at::Tensor dv_t = in ? di : di.select(0, t);
    // t = 0: dL/dz[-1] is returned whole (the gradient of the initial state): dense
    bool masked = false;
    if (wtp && t > 0)
      masked = static_cast<double>(spike_lists(sdp + (t - 1) * BN, B, N, sidx.data(), scnt.data())) <= back_at;
    at::parallel_for(0, B, grain, [&](int64_t b0, int64_t b1) {
      const int64_t o = b0 * N, m = (b1 - b0) * N;
      if (gz_row)
        for (int64_t b = b0; b < b1; ++b) add_into(cz + b * N, gzp, N);
      else if (gzp)
        add_into(cz + o, gzp + t * BN + o, m);
      if (gvp) add_into(cv + o, gvp + t * BN + o, m);
      if (gap) add_into(ca + o, gap + t * BN + o, m);
      for (int64_t w = 0; w < W; ++w) {  // the readout's gradient: M[w, t] gf[w]
        const S mwt = Mp[w * T + t];
        if (mwt == S(0)) continue;  // a window that ended before t
        const S* __restrict__ g = gfp + w * BN + o;
        S* __restrict__ dst = cz + o;
        for (int64_t k = 0; k < m; ++k) dst[k] += mwt * g[k];
      }
      step(b0, b1, N, c, sdt, fp, zprev, vprev, cv, ca, cz, dv);
      if (masked) masked_product<S>(b0, b1, N, dv, wtp, sidx.data(), scnt.data(), cz);
    });
    // dL/dz[t-1] through W z[t-1]: (dv W)[b, j], torch's BLAS (a hand-written loop of fused
    // multiply-adds measured 2.3x slower at N = 128, 2.7x at N = 512)
    // (the BLAS call addmm_ would make, without its per-call dispatch: gemm_acc)
    if (!detach_rec && !masked && !gemm_acc<S>(B, N, N, dv, wp, cz)) cz_t.addmm_(dv_t, w);
    // dW_in[:, j] += sum_b x[t][b, j] dv[b, :], from the input events of step t
    if (in) scatter_inputs<S>(*in, t * B, B, dv, N, dwint.data_ptr<S>());  // rows t B + b, b ascending
    // dW[i, j] += sum_b dv[b, i] z[t-1][b, j], from the spikes of step t-1
    const int64_t nnz = spike_lists(zprev, B, N, idx.data(), cnt.data());
    if (nnz == 0) continue;
    if (static_cast<double>(nnz) > dense_at) {
      dwt.addmm_((t > 0 ? z.select(0, t - 1) : z0).t(), dv_t);
    } else {
      scatter_events<S>(zprev, B, N, idx.data(), cnt.data(), dv, N, dwtp);
    }
  }
  out = {in ? dwint.t().contiguous() : di, dwt.t().contiguous(), cv_t, ca_t, cz_t};
}

template <typename S>
void project_forward_impl(const InputEvents<S>& in, int64_t R, at::Tensor& out) {
  const int64_t N = out.size(1);
  S* op = out.data_ptr<S>();  // at::empty: project_row zeroes each row before adding to it
  at::parallel_for(0, R, grain_rows(N), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) project_row<S>(in, r, N, op + r * N);
  });
}

template <typename S>
void project_backward_impl(const InputEvents<S>& in, int64_t R, const at::Tensor& di, at::Tensor& dwt) {
  const int64_t N = di.size(1);
  scatter_inputs<S>(in, 0, R, di.data_ptr<S>(), N, dwt.data_ptr<S>());  // every row r, r ascending for each j
}


// ---- e-prop: the adjoint of the eligibility traces, one chunk backward in time -----------
// (equations in rules/eprop_fused.py). Per trial b and neuron n, from the step after the chunk
// (p, q, m hold p[t+1], q[t+1], m[t+1] on entry and p[t0], q[t0], m[t0] on exit):
//   m[t] = l[t] + kappa m[t+1]   (filtered; else m[t] = l[t])     c[t] = m[t] + cj[n]
//   psi  = sd[t] / v_th;  pk = c[t] psi;  a' = alpha (1 - z[t]) (zero reset) | alpha
//   p[t] = pk + a' p[t+1] + psi q[t+1]                             (ALIF term)
//   q[t] = (rho - beta psi) q[t+1] - beta pk
// and dW^T[i, :] += pre[t][b, i] p[t][b, :] over the nonzero presynaptic entries
// (pre = x[t] for the input synapses, z[t-1] for the recurrent ones), or one matmul if dense.
enum EpropFlags : int64_t { EP_FILTERED = 256, EP_REG = 512 };

template <typename S, bool RZ, bool AD, bool FI, bool REG>
void adj_rows(int64_t b0, int64_t b1, int64_t N, Consts<S> c, const S* __restrict__ sdk, const S* __restrict__ zk,
              const S* __restrict__ lk, const S* __restrict__ cj, S kappa, S* __restrict__ p, S* __restrict__ q,
              S* __restrict__ m) {
  const S* __restrict__ alpha = c.alpha;
  const S* __restrict__ rho = c.rho;
  const S* __restrict__ vth = c.vth;
  const S* __restrict__ beta = c.beta;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t o = b * N;
    for (int64_t n = 0; n < N; ++n) {
      const int64_t k = o + n;
      const S psi = sdk[k] / vth[n];
      const S l = lk ? lk[k] : S(0);
      S mk = l;
      if (FI) {
        mk = l + kappa * m[k];
        m[k] = mk;
      }
      const S cc = REG ? mk + cj[n] : mk;
      const S pk = cc * psi;
      const S an = RZ ? alpha[n] * (S(1) - zk[k]) : alpha[n];
      S pv = pk + an * p[k];
      if (AD) {
        pv = pv + psi * q[k];
        q[k] = (rho[n] - beta[n] * psi) * q[k] - beta[n] * pk;
      }
      p[k] = pv;
    }
  }
}

template <typename S>
using AdjFn = void (*)(int64_t, int64_t, int64_t, Consts<S>, const S*, const S*, const S*, const S*, S, S*, S*, S*);

template <typename S, bool RZ, bool AD>
AdjFn<S> pick_adj2(bool fi, bool reg) {
  if (fi) return reg ? adj_rows<S, RZ, AD, true, true> : adj_rows<S, RZ, AD, true, false>;
  return reg ? adj_rows<S, RZ, AD, false, true> : adj_rows<S, RZ, AD, false, false>;
}

template <typename S>
AdjFn<S> pick_adj(bool rz, bool ad, bool fi, bool reg) {
  if (rz) return ad ? pick_adj2<S, true, true>(fi, reg) : pick_adj2<S, true, false>(fi, reg);
  return ad ? pick_adj2<S, false, true>(fi, reg) : pick_adj2<S, false, false>(fi, reg);
}

template <typename S>
void eprop_adjoint_impl(const at::Tensor& x, const at::Tensor& z, const at::Tensor& zb, const at::Tensor& sd,
                        const at::Tensor& win, const at::Tensor& L, const at::Tensor& cj, const at::Tensor& alpha_t,
                        const at::Tensor& rho_t, const at::Tensor& vth_t, const at::Tensor& beta_t, int64_t flags,
                        double kappa_d, at::Tensor& p_t, at::Tensor& q_t, at::Tensor& m_t, at::Tensor& gt,
                        double dense_thr) {
  const int64_t K = z.size(0), B = z.size(1), N = z.size(2), BN = B * N, n_in = x.size(2);
  const bool reset_zero = flags & RESET_ZERO, adaptive = flags & ADAPTIVE;
  const bool filtered = flags & EP_FILTERED, reg = flags & EP_REG;
  Consts<S> c{alpha_t.data_ptr<S>(), rho_t.data_ptr<S>(), vth_t.data_ptr<S>(), beta_t.data_ptr<S>(), nullptr};
  const S *xp = x.data_ptr<S>(), *zp = z.data_ptr<S>(), *zbp = zb.data_ptr<S>(), *sdp = sd.data_ptr<S>();
  const int64_t* wp = win.data_ptr<int64_t>();
  const S* Lp = L.numel() ? L.data_ptr<S>() : nullptr;
  const S* cjp = reg ? cj.data_ptr<S>() : nullptr;
  S *p = p_t.data_ptr<S>(), *q = q_t.data_ptr<S>(), *m = m_t.data_ptr<S>(), *g = gt.data_ptr<S>();
  const S kappa = static_cast<S>(kappa_d);
  AdjFn<S> step = pick_adj<S>(reset_zero, adaptive, filtered, reg);
  const int64_t grain = grain_rows(N);
  std::vector<int32_t> idx(B * std::max(n_in, N));
  std::vector<int64_t> cnt(B);
  at::Tensor gt_in = gt.narrow(0, 0, n_in), gt_rec = gt.narrow(0, n_in, N);
  for (int64_t k = K - 1; k >= 0; --k) {
    const S* lk = (wp[k] >= 0 && Lp) ? Lp + wp[k] * BN : nullptr;
    const S* sdk = sdp + k * BN;
    const S* zk = zp + k * BN;
    at::parallel_for(0, B, grain, [&](int64_t b0, int64_t b1) { step(b0, b1, N, c, sdk, zk, lk, cjp, kappa, p, q, m); });
    // input synapses: pre = x[t]
    const S* xk = xp + k * B * n_in;
    int64_t nnz = n_in ? spike_lists(xk, B, n_in, idx.data(), cnt.data()) : 0;
    if (nnz > 0) {
      if (static_cast<double>(nnz) > dense_thr * static_cast<double>(B * n_in))
        gt_in.addmm_(x.select(0, k).t(), p_t);
      else
        scatter_events(xk, B, n_in, idx.data(), cnt.data(), p, N, g);
    }
    // recurrent synapses: pre = z[t-1]
    const S* zpk = k > 0 ? zp + (k - 1) * BN : zbp;
    nnz = spike_lists(zpk, B, N, idx.data(), cnt.data());
    if (nnz > 0) {
      if (static_cast<double>(nnz) > dense_thr * static_cast<double>(BN))
        gt_rec.addmm_((k > 0 ? z.select(0, k - 1) : zb).t(), p_t);
      else
        scatter_events(zpk, B, N, idx.data(), cnt.data(), p, N, g + n_in * N);
    }
  }
}

}  // namespace

// the input events of x ([R, K] or [T, B, K], contiguous): {ptr [R + 1] int64, idx int32}, or two
// empty tensors if more than dense_thr of the entries of x are nonzero (see scan_events)
std::vector<at::Tensor> input_events(at::Tensor x, double dense_thr) {
  TORCH_CHECK(x.is_contiguous() && x.dim() >= 2, "input_events: x must be contiguous, [R, K] or [T, B, K]");
  const int64_t K = x.size(-1), R = K ? x.numel() / K : 0;
  const double dense_at = dense_thr * static_cast<double>(x.numel());
  const int64_t room = std::min<int64_t>(R * K, static_cast<int64_t>(std::max(dense_at, 0.0))) + K + 1;
  at::Tensor ptr = at::empty({R + 1}, x.options().dtype(at::kLong));
  at::Tensor idx = at::empty({room}, x.options().dtype(at::kInt));
  bool sparse = false;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cognet_input_events", [&] {
    sparse = scan_events<scalar_t>(x.data_ptr<scalar_t>(), R, K, dense_at, ptr.data_ptr<int64_t>(),
                                   idx.data_ptr<int32_t>());
  });
  if (!sparse) return {at::empty({0}, ptr.options()), at::empty({0}, idx.options())};
  return {ptr, idx.narrow(0, 0, ptr[R].item<int64_t>())};
}

template <typename S>
InputEvents<S> events_of(const at::Tensor& x, const at::Tensor& ptr, const at::Tensor& idx, const at::Tensor& wt) {
  TORCH_CHECK(x.is_contiguous() && ptr.is_contiguous() && idx.is_contiguous(), "input events must be contiguous");
  return InputEvents<S>{x.data_ptr<S>(), ptr.data_ptr<int64_t>(), idx.data_ptr<int32_t>(),
                        wt.defined() && wt.numel() ? wt.data_ptr<S>() : nullptr, x.size(-1)};
}

// event-driven input projection: out[r] = sum_{j : x[r, j] != 0} x[r, j] W_in[:, j]; x [R, K],
// (ptr, idx) its input_events
at::Tensor project_forward(at::Tensor x, at::Tensor ptr, at::Tensor idx, at::Tensor w_in) {
  at::Tensor out = at::empty({x.size(0), w_in.size(0)}, x.options());
  at::Tensor wt = w_in.t().contiguous();  // row j = the weights out of input j
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cognet_project_forward", [&] {
    project_forward_impl<scalar_t>(events_of<scalar_t>(x, ptr, idx, wt), x.size(0), out);
  });
  return out;
}

// its weight gradient dW_in[:, j] = sum_{r : x[r, j] != 0} x[r, j] dI[r]; returns [N, K]
at::Tensor project_backward(at::Tensor x, at::Tensor ptr, at::Tensor idx, at::Tensor di) {
  at::Tensor dwt = at::zeros({x.size(1), di.size(1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cognet_project_backward", [&] {
    project_backward_impl<scalar_t>(events_of<scalar_t>(x, ptr, idx, at::Tensor()), x.size(0), di, dwt);
  });
  return dwt.t().contiguous();
}

std::vector<at::Tensor> forward(at::Tensor cur, at::Tensor w, at::Tensor v0, at::Tensor a0, at::Tensor z0,
                                at::Tensor r0, at::Tensor alpha, at::Tensor rho, at::Tensor vth, at::Tensor beta,
                                at::Tensor nref, int64_t flags, int64_t shape_id, double width, double peak,
                                double dense_thr) {
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(cur.scalar_type(), "cognet_fused_forward", [&] {
    forward_impl<scalar_t>(cur.size(0), cur, nullptr, w, v0, a0, z0, r0, alpha, rho, vth, beta, nref, flags,
                           shape_id, width, peak, dense_thr, out);
  });
  return out;
}

// forward with the input projection fused in: x [T, B, K] input spikes, (ptr, idx) their
// input_events, w_in [N, K]; the currents of each step are projected right before it
std::vector<at::Tensor> forward_inputs(at::Tensor x, at::Tensor ptr, at::Tensor idx, at::Tensor w_in, at::Tensor w,
                                       at::Tensor v0, at::Tensor a0, at::Tensor z0, at::Tensor r0,
                                       at::Tensor alpha, at::Tensor rho, at::Tensor vth, at::Tensor beta,
                                       at::Tensor nref, int64_t flags, int64_t shape_id, double width, double peak,
                                       double dense_thr) {
  TORCH_CHECK(x.dim() == 3 && x.size(1) == v0.size(0) && w_in.size(0) == v0.size(1) && w_in.size(1) == x.size(2),
              "forward_inputs: x [T, B, K], w_in [N, K] and the state [B, N] do not fit");
  std::vector<at::Tensor> out;
  at::Tensor wt = w_in.t().contiguous();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cognet_fused_forward_inputs", [&] {
    const InputEvents<scalar_t> in = events_of<scalar_t>(x, ptr, idx, wt);
    forward_impl<scalar_t>(x.size(0), at::Tensor(), &in, w, v0, a0, z0, r0, alpha, rho, vth, beta, nref, flags,
                           shape_id, width, peak, dense_thr, out);
  });
  return out;
}

std::vector<at::Tensor> backward(at::Tensor gz, at::Tensor gv, at::Tensor ga, at::Tensor gvT, at::Tensor gaT,
                                 at::Tensor z, at::Tensor sd, at::Tensor vall, at::Tensor v0, at::Tensor z0,
                                 at::Tensor factor, at::Tensor w, at::Tensor alpha, at::Tensor rho, at::Tensor vth,
                                 at::Tensor beta, int64_t flags, double dense_thr, double back_thr,
                                 at::Tensor readout, at::Tensor gf) {
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "cognet_fused_backward", [&] {
    backward_impl<scalar_t>(gz, gv, ga, gvT, gaT, z, sd, vall, v0, z0, factor, w, alpha, rho, vth, beta, flags,
                            dense_thr, back_thr, nullptr, readout, gf, out);
  });
  return out;
}

// backward of forward_inputs: returns {dW_in [N, K], dW, dv0, da0, dz0} (no dI); readout, gf as in backward
std::vector<at::Tensor> backward_inputs(at::Tensor x, at::Tensor ptr, at::Tensor idx, at::Tensor gz, at::Tensor gv,
                                        at::Tensor ga, at::Tensor gvT, at::Tensor gaT, at::Tensor z, at::Tensor sd,
                                        at::Tensor vall, at::Tensor v0, at::Tensor z0, at::Tensor factor,
                                        at::Tensor w, at::Tensor alpha, at::Tensor rho, at::Tensor vth,
                                        at::Tensor beta, int64_t flags, double dense_thr, double back_thr,
                                        at::Tensor readout, at::Tensor gf) {
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "cognet_fused_backward_inputs", [&] {
    const InputEvents<scalar_t> in = events_of<scalar_t>(x, ptr, idx, at::Tensor());
    backward_impl<scalar_t>(gz, gv, ga, gvT, gaT, z, sd, vall, v0, z0, factor, w, alpha, rho, vth, beta, flags,
                            dense_thr, back_thr, &in, readout, gf, out);
  });
  return out;
}

// e-prop adjoint over one chunk (see eprop_adjoint_impl); updates p, q, m and gt in place
void eprop_adjoint(at::Tensor x, at::Tensor z, at::Tensor zb, at::Tensor sd, at::Tensor win, at::Tensor L,
                   at::Tensor cj, at::Tensor alpha, at::Tensor rho, at::Tensor vth, at::Tensor beta, int64_t flags,
                   double kappa, at::Tensor p, at::Tensor q, at::Tensor m, at::Tensor gt, double dense_thr) {
  TORCH_CHECK(x.is_contiguous() && z.is_contiguous() && zb.is_contiguous() && sd.is_contiguous() &&
                  win.is_contiguous() && L.is_contiguous() && p.is_contiguous() && q.is_contiguous() &&
                  m.is_contiguous() && gt.is_contiguous(),
              "eprop_adjoint: tensors must be contiguous");
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "cognet_eprop_adjoint", [&] {
    eprop_adjoint_impl<scalar_t>(x, z, zb, sd, win, L, cj, alpha, rho, vth, beta, flags, kappa, p, q, m, gt,
                                 dense_thr);
  });
}

// whether the backward's dense product calls the BLAS directly (gemm_acc) or through addmm_
bool blas_direct() { return fortran_gemm<float>() != nullptr && fortran_gemm<double>() != nullptr; }

// Python bindings. The kernels release the GIL while they run: the trainer draws the next batch
// in another Python thread meanwhile (cognet.training.prefetch). Errors reach Python as usual.
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", torch::wrap_pybind_function_no_gil(forward), "forward");
  m.def("backward", torch::wrap_pybind_function_no_gil(backward), "backward");
  m.def("forward_inputs", torch::wrap_pybind_function_no_gil(forward_inputs), "forward_inputs");
  m.def("backward_inputs", torch::wrap_pybind_function_no_gil(backward_inputs), "backward_inputs");
  m.def("input_events", torch::wrap_pybind_function_no_gil(input_events), "input_events");
  m.def("project_forward", torch::wrap_pybind_function_no_gil(project_forward), "project_forward");
  m.def("project_backward", torch::wrap_pybind_function_no_gil(project_backward), "project_backward");
  m.def("eprop_adjoint", torch::wrap_pybind_function_no_gil(eprop_adjoint), "eprop_adjoint");
  m.def("blas_direct", torch::wrap_pybind_function(blas_direct), "blas_direct");
}
