// Whole-sequence LIF/ALIF kernels for cognet.core.fused (built with torch.utils.cpp_extension).
//
// The equations, their order of floating-point operations and the gradient switches are
// those of cognet/core/functional.py (the reference engine); see the docstring of
// cognet/core/fused.py. Compiled with -ffp-contract=off so that no multiply-add is fused:
// every product and sum is rounded exactly as in the torch reference, which keeps the spikes
// bit-identical wherever the recurrent sums agree.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

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

// spike lists of a [B, N] spike tensor: idx[b * N + k], k < cnt[b]
template <typename S>
inline int64_t spike_lists(const S* z, int64_t B, int64_t N, std::vector<int32_t>& idx, std::vector<int64_t>& cnt) {
  int64_t total = 0;
  for (int64_t b = 0; b < B; ++b) {
    int64_t c = 0;
    const S* zb = z + b * N;
    int32_t* ib = idx.data() + b * N;
    for (int64_t j = 0; j < N; ++j)
      if (zb[j] != S(0)) ib[c++] = static_cast<int32_t>(j);
    cnt[b] = c;
    total += c;
  }
  return total;
}

template <typename S>
void forward_impl(const at::Tensor& cur, const at::Tensor& w, const at::Tensor& v0, const at::Tensor& a0,
                  const at::Tensor& z0, const at::Tensor& r0, const at::Tensor& alpha_t, const at::Tensor& rho_t,
                  const at::Tensor& vth_t, const at::Tensor& beta_t, const at::Tensor& nref_t, int64_t flags,
                  int64_t shape_id, double width_d, double peak_d, double dense_thr, std::vector<at::Tensor>& out) {
  const int64_t T = cur.size(0), B = cur.size(1), N = cur.size(2), BN = B * N;
  const bool reset_zero = flags & RESET_ZERO, adaptive = flags & ADAPTIVE, refractory = flags & REFRACTORY;
  const bool record = flags & RECORD, keep_v = (flags & KEEP_V) || record;
  auto opts = cur.options();
  at::Tensor z = at::empty({T, B, N}, opts), sd = at::empty({T, B, N}, opts);
  at::Tensor vall = keep_v ? at::empty({T, B, N}, opts) : at::empty({0}, opts);
  at::Tensor aall = record ? at::empty({T, B, N}, opts) : at::empty({0}, opts);
  at::Tensor wt = w.t().contiguous();  // row j = column j of W: the weights out of neuron j
  at::Tensor v = v0.clone(), a = a0.clone(), r = r0.clone();
  at::Tensor zp_t = z0.clone(), rec_t = at::empty({B, N}, opts);
  S *vp = v.data_ptr<S>(), *ap = a.data_ptr<S>(), *rp = r.data_ptr<S>(), *zp = zp_t.data_ptr<S>();
  S* rec = rec_t.data_ptr<S>();
  const S *alpha = alpha_t.data_ptr<S>(), *rho = rho_t.data_ptr<S>(), *vth = vth_t.data_ptr<S>();
  const S *beta = beta_t.data_ptr<S>(), *nref = nref_t.data_ptr<S>(), *wtp = wt.data_ptr<S>();
  const S *curp = cur.data_ptr<S>();
  S *zo = z.data_ptr<S>(), *sdo = sd.data_ptr<S>();
  S* vo = keep_v ? vall.data_ptr<S>() : nullptr;
  S* ao = record ? aall.data_ptr<S>() : nullptr;
  const S width = static_cast<S>(width_d), peak = static_cast<S>(peak_d);
  std::vector<int32_t> idx(BN);
  std::vector<int64_t> cnt(B);
  int64_t nnz = spike_lists(zp, B, N, idx, cnt);
  const double dense_at = dense_thr * static_cast<double>(BN);
  for (int64_t t = 0; t < T; ++t) {
    // recurrent input W z[t-1]: from the columns of the neurons that spiked, or one matmul
    if (static_cast<double>(nnz) > dense_at) {
      at::mm_out(rec_t, zp_t, wt);
    } else {
      std::memset(rec, 0, sizeof(S) * BN);
      for (int64_t b = 0; b < B; ++b) {
        S* rb = rec + b * N;
        const int32_t* ib = idx.data() + b * N;
        for (int64_t k = 0; k < cnt[b]; ++k) {
          const int64_t j = ib[k];
          const S zv = zp[b * N + j];
          const S* wr = wtp + j * N;
          if (zv == S(1)) {
            for (int64_t i = 0; i < N; ++i) rb[i] += wr[i];
          } else {
            for (int64_t i = 0; i < N; ++i) rb[i] += zv * wr[i];
          }
        }
      }
    }
    const S* ct = curp + t * BN;
    S* zt = zo + t * BN;
    S* st = sdo + t * BN;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t n = 0; n < N; ++n) {
        const int64_t k = b * N + n;
        const S zpk = zp[k];
        S vn;
        if (reset_zero)
          vn = alpha[n] * vp[k] * (S(1) - zpk) + ct[k] + rec[k];
        else
          vn = alpha[n] * vp[k] + ct[k] + rec[k] - vth[n] * zpk;
        S x;
        if (adaptive) {
          const S an = rho[n] * ap[k] + zpk;
          ap[k] = an;
          x = (vn - vth[n] - beta[n] * an) / vth[n];
        } else {
          x = (vn - vth[n]) / vth[n];
        }
        S m = S(1);
        if (refractory) m = rp[k] == S(0) ? S(1) : S(0);
        const S zn = (x > S(0) ? S(1) : S(0)) * m;
        if (refractory) {
          rp[k] = zn > S(0) ? std::max(nref[n] - S(1), S(0)) : std::max(rp[k] - S(1), S(0));
        }
        st[k] = peak * shape_fn<S>(shape_id, x / width) * m;
        zt[k] = zn;
        vp[k] = vn;
      }
    }
    if (keep_v) std::memcpy(vo + t * BN, vp, sizeof(S) * BN);
    if (record) std::memcpy(ao + t * BN, ap, sizeof(S) * BN);
    std::memcpy(zp, zt, sizeof(S) * BN);
    nnz = spike_lists(zp, B, N, idx, cnt);
  }
  out = {z, sd, vall, aall, v, a, r};
}

template <typename S>
void backward_impl(const at::Tensor& gz, const at::Tensor& gv, const at::Tensor& ga, const at::Tensor& gvT,
                   const at::Tensor& gaT, const at::Tensor& z, const at::Tensor& sd, const at::Tensor& vall,
                   const at::Tensor& v0, const at::Tensor& z0, const at::Tensor& factor, const at::Tensor& w,
                   const at::Tensor& alpha_t, const at::Tensor& rho_t, const at::Tensor& vth_t,
                   const at::Tensor& beta_t, int64_t flags, double dense_thr, std::vector<at::Tensor>& out) {
  const int64_t T = z.size(0), B = z.size(1), N = z.size(2), BN = B * N;
  const bool reset_zero = flags & RESET_ZERO, adaptive = flags & ADAPTIVE;
  const bool detach_reset = flags & DETACH_RESET, detach_rec = flags & DETACH_REC, leak = flags & LEAK_AWARE;
  auto opts = z.options();
  at::Tensor di = at::empty({T, B, N}, opts);
  at::Tensor dwt = at::zeros({N, N}, opts);  // dW^T: row j collects the gradient of column j
  at::Tensor cv_t = gvT.numel() ? gvT.clone() : at::zeros({B, N}, opts);
  at::Tensor ca_t = gaT.numel() ? gaT.clone() : at::zeros({B, N}, opts);
  at::Tensor cz_t = at::zeros({B, N}, opts), grec_t = at::empty({B, N}, opts);
  S *cv = cv_t.data_ptr<S>(), *ca = ca_t.data_ptr<S>(), *cz = cz_t.data_ptr<S>(), *grec = grec_t.data_ptr<S>();
  const S* gzp = gz.numel() ? gz.data_ptr<S>() : nullptr;
  const S* gvp = gv.numel() ? gv.data_ptr<S>() : nullptr;
  const S* gap = ga.numel() ? ga.data_ptr<S>() : nullptr;
  const S *zpt = z.data_ptr<S>(), *sdp = sd.data_ptr<S>();
  const S* vallp = vall.numel() ? vall.data_ptr<S>() : nullptr;
  const S *v0p = v0.data_ptr<S>(), *z0p = z0.data_ptr<S>();
  const S* fp = leak ? factor.data_ptr<S>() : nullptr;
  const S *alpha = alpha_t.data_ptr<S>(), *rho = rho_t.data_ptr<S>(), *vth = vth_t.data_ptr<S>();
  const S* beta = beta_t.data_ptr<S>();
  S *dip = di.data_ptr<S>(), *dwtp = dwt.data_ptr<S>();
  std::vector<int32_t> idx(BN);
  std::vector<int64_t> cnt(B);
  const double dense_at = dense_thr * static_cast<double>(BN);
  const bool need_v = reset_zero && !detach_reset;
  for (int64_t t = T - 1; t >= 0; --t) {
    const S* zprev = t > 0 ? zpt + (t - 1) * BN : z0p;
    const S* vprev = need_v ? (t > 0 ? vallp + (t - 1) * BN : v0p) : nullptr;
    const S* sdt = sdp + t * BN;
    S* dv = dip + t * BN;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t n = 0; n < N; ++n) {
        const int64_t k = b * N + n;
        S g = cz[k];
        if (gzp) g = g + gzp[t * BN + k];
        if (leak) g = g * fp[k];
        const S gxv = g * sdt[k] / vth[n];  // dL/dv through the spike of this step
        S dvk = cv[k] + gxv;
        if (gvp) dvk += gvp[t * BN + k];
        dv[k] = dvk;
        S dak = ca[k];
        if (gap) dak += gap[t * BN + k];
        if (adaptive) dak -= gxv * beta[n];
        const S zk = zprev[k];
        cv[k] = reset_zero ? alpha[n] * (S(1) - zk) * dvk : alpha[n] * dvk;
        S czk = adaptive ? dak : S(0);  // a[t] = rho a[t-1] + z[t-1] always keeps its gradient
        if (!detach_reset) czk += reset_zero ? -(alpha[n] * vprev[k]) * dvk : -vth[n] * dvk;
        cz[k] = czk;
        ca[k] = adaptive ? rho[n] * dak : dak;
      }
    }
    at::Tensor dv_t = di.select(0, t);
    if (!detach_rec) {  // dL/dz[t-1] through W z[t-1]: (dv W)[b, j]
      at::mm_out(grec_t, dv_t, w);
      for (int64_t k = 0; k < BN; ++k) cz[k] += grec[k];
    }
    // dW[i, j] += sum_b dv[b, i] z[t-1][b, j], from the spikes of step t-1
    const int64_t nnz = spike_lists(zprev, B, N, idx, cnt);
    if (nnz == 0) continue;
    if (static_cast<double>(nnz) > dense_at) {
      at::Tensor zprev_t = t > 0 ? z.select(0, t - 1) : z0;
      dwt.addmm_(zprev_t.t(), dv_t);
    } else {
      for (int64_t b = 0; b < B; ++b) {
        const S* db = dv + b * N;
        const int32_t* ib = idx.data() + b * N;
        for (int64_t kk = 0; kk < cnt[b]; ++kk) {
          const int64_t j = ib[kk];
          const S zv = zprev[b * N + j];
          S* row = dwtp + j * N;
          if (zv == S(1)) {
            for (int64_t i = 0; i < N; ++i) row[i] += db[i];
          } else {
            for (int64_t i = 0; i < N; ++i) row[i] += zv * db[i];
          }
        }
      }
    }
  }
  out = {di, dwt.t().contiguous(), cv_t, ca_t, cz_t};
}

}  // namespace

std::vector<at::Tensor> forward(at::Tensor cur, at::Tensor w, at::Tensor v0, at::Tensor a0, at::Tensor z0,
                                at::Tensor r0, at::Tensor alpha, at::Tensor rho, at::Tensor vth, at::Tensor beta,
                                at::Tensor nref, int64_t flags, int64_t shape_id, double width, double peak,
                                double dense_thr) {
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(cur.scalar_type(), "cognet_fused_forward", [&] {
    forward_impl<scalar_t>(cur, w, v0, a0, z0, r0, alpha, rho, vth, beta, nref, flags, shape_id, width, peak,
                           dense_thr, out);
  });
  return out;
}

std::vector<at::Tensor> backward(at::Tensor gz, at::Tensor gv, at::Tensor ga, at::Tensor gvT, at::Tensor gaT,
                                 at::Tensor z, at::Tensor sd, at::Tensor vall, at::Tensor v0, at::Tensor z0,
                                 at::Tensor factor, at::Tensor w, at::Tensor alpha, at::Tensor rho, at::Tensor vth,
                                 at::Tensor beta, int64_t flags, double dense_thr) {
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "cognet_fused_backward", [&] {
    backward_impl<scalar_t>(gz, gv, ga, gvT, gaT, z, sd, vall, v0, z0, factor, w, alpha, rho, vth, beta, flags,
                            dense_thr, out);
  });
  return out;
}
