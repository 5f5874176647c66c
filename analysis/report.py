"""The one-page report of ``cognet analyze``: Markdown (images by relative path) and a
self-contained HTML file (images embedded as base64), both from the same rows."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from cognet.training.io import atomic_write


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v)


def summary_rows(a: Dict[str, Any]) -> List[Tuple[str, str, str]]:
    """(statistic, value, definition) rows for the report and the command's text output."""
    r = a["rate_hz"]
    rows = [
        ("mean firing rate", f"{_fmt(r['mean'])} Hz (median {_fmt(r['median'])}, max {_fmt(r['max'])})",
         "spikes / (trials x duration), per neuron"),
        ("silent neurons", f"{100 * a['silent_fraction']:.1f} %", "no spike in any held-out trial"),
        ("neurons at 2-60 Hz", f"{100 * a['band_2_60hz_fraction']:.1f} %", "rate inside the 2-60 Hz band"),
        ("ISI CV (pooled)", f"{_fmt(a['isi_cv']['median'])} median ({a['isi_cv']['n']} neurons)",
         "std/mean of the within-trial ISIs of all trials pooled (>= 3 ISIs); mixes rates of different trials"),
    ]
    if "isi_cv_per_trial" in a:  # analyses written before these measures lack them
        rows += [
            ("ISI CV (per trial)", f"{_fmt(a['isi_cv_per_trial']['median'])} median "
             f"({a['isi_cv_per_trial']['n']} neurons)", "std/mean of ISIs within one trial (>= 2 ISIs), averaged over trials"),
            ("ISI LV", f"{_fmt(a['isi_lv']['median'])} median ({a['isi_lv']['n']} neurons)",
             "local variation, Shinomoto et al. 2003: 3 mean ((I_k+1 - I_k)/(I_k+1 + I_k))^2; 1 Poisson, 0 regular"),
            ("ISI CV2", f"{_fmt(a['isi_cv2']['median'])} median ({a['isi_cv2']['n']} neurons)",
             "Holt et al. 1996: 2 mean |I_k+1 - I_k|/(I_k+1 + I_k) over neighbouring ISIs; 1 Poisson, 0 regular"),
        ]
    if "symbol_steps" in a:
        sy = a["symbol_steps"]
        ms = _fmt(sy["symbol_ms"])
        rows += [
            ("spikes per neuron per symbol", f"{sy['spikes_per_neuron_per_symbol']:.3f} "
             f"(0: {100 * sy['fraction_0']:.1f} %, 1: {100 * sy['fraction_1']:.1f} %, "
             f">= 2: {100 * sy['fraction_2_or_more']:.1f} % of neuron-steps)",
             f"spike count of one neuron in one {ms} ms symbol step; a rate code needs several"),
            ("population spikes per symbol", f"{_fmt(sy['population_spikes_per_symbol'])} "
             f"({_fmt(sy['population_spikes_per_step'])} per time step)",
             f"all recurrent spikes in one {ms} ms symbol step (and in one time step)"),
            ("spikes per answer", f"{_fmt(sy['spikes_per_answer'])}",
             f"recurrent spikes per trial / answer windows per trial ({sy['answers_per_trial']})"),
        ]
    rows += [
        ("Fano factor", f"{_fmt(a['fano_factor']['median'])} median",
         f"var/mean of counts across trials in {_fmt(a['fano_factor']['window_ms'])} ms windows"),
        ("spike-count correlation", f"{_fmt(a['count_correlation']['total'])} total, "
         f"{_fmt(a['count_correlation']['noise'])} noise",
         f"mean pairwise Pearson r of counts in {_fmt(a['count_correlation']['bin_ms'])} ms bins"),
        ("synchrony (Golomb chi)", f"{_fmt(a['synchrony']['chi'])} "
         f"(independent ~ {_fmt(a['synchrony']['independent_reference'])})",
         f"sqrt(Var(pop. mean) / mean Var(single)), {_fmt(a['synchrony']['bin_ms'])} ms bins"),
        ("sparsity", f"{100 * a['sparsity']['active_fraction']:.1f} % active",
         f"fraction of neurons with a spike per {_fmt(a['sparsity']['bin_ms'])} ms bin"),
    ]
    for name, p in a["phase_rates"].items():
        rows.append((f"rate in phase '{name}'", f"{_fmt(p['mean_hz'])} Hz", f"{p['steps']} steps per trial"))
    sel = a["selectivity"]
    for factor in ("position", "symbol", "answer", "cue"):
        s = sel.get(factor)
        if s is None:
            continue
        frac = s.get("fraction_medium_in_band")
        rows.append((f"selectivity: {factor}", f"mean omega^2 {_fmt(s['mean_omega2_in_band'])}, "
                     f"{'n/a' if frac is None else f'{100 * frac:.0f} %'} with omega^2 >= 0.06",
                     f"one-way ANOVA on counts per symbol step; {sel['neurons_in_band']} neurons in band"))
    return rows


def write_report(out_dir: Path, a: Dict[str, Any], figures: Dict[str, Path], header: Sequence[str],
                 context: Sequence[Tuple[str, str, str]] = ()) -> Dict[str, Path]:
    """Write ``report.md`` and ``report.html`` into ``out_dir``; return their paths.

    ``context`` rows (item, value, definition: configuration, chance, rate target, Brian2
    agreement) come in a first table, before the firing statistics."""
    out_dir = Path(out_dir)
    rows = summary_rows(a)
    captions = {
        "raster": "One held-out trial: input spikes (by channel), recurrent spikes, readout against the target.",
        "rates": "Per-neuron firing rates over the held-out trials.",
        "cv_rate": "ISI coefficient of variation against firing rate.",
        "learning": "Learning curves from metrics.jsonl (thin: per iteration; thick: running mean; dots: validation "
                    "trials; dotted: chance; dashed: early-stop target and rate target).",
        "selectivity": "Per-neuron selectivity (omega^2) by factor.",
    }
    title = header[0] if header else "cognet analysis"
    md = [f"# {title}", ""] + [f"{h}  " for h in header[1:]]
    if context:
        md += ["", "| run | value | definition |", "|---|---|---|"] + [f"| {s} | {v} | {d} |" for s, v, d in context]
    md += ["", "| statistic | value | definition |", "|---|---|---|"]
    md += [f"| {s} | {v} | {d} |" for s, v, d in rows]
    for key, path in figures.items():
        md += ["", f"## {key}", "", f"![{key}]({Path(path).name})", "", captions.get(key, "")]
    md_path = out_dir / "report.md"
    atomic_write(md_path, "\n".join(md) + "\n")

    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1050px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
        "img{max-width:100%;border:1px solid #eee}figcaption{font-size:13px;color:#555}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    parts += [f"<p>{esc(h)}</p>" for h in header[1:]]
    if context:
        parts.append("<table><tr><th>run</th><th>value</th><th>definition</th></tr>")
        parts += [f"<tr><td>{esc(s)}</td><td>{esc(v)}</td><td>{esc(d)}</td></tr>" for s, v, d in context]
        parts.append("</table><p></p>")
    parts.append("<table><tr><th>statistic</th><th>value</th><th>definition</th></tr>")
    parts += [f"<tr><td>{esc(s)}</td><td>{esc(v)}</td><td>{esc(d)}</td></tr>" for s, v, d in rows]
    parts.append("</table>")
    for key, path in figures.items():
        data = base64.b64encode(Path(path).read_bytes()).decode()
        parts.append(f"<figure><h2>{esc(key)}</h2><img alt='{esc(key)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{esc(captions.get(key, ''))}</figcaption></figure>")
    parts.append("</body></html>")
    html_path = out_dir / "report.html"
    atomic_write(html_path, "\n".join(parts))
    return {"markdown": md_path, "html": html_path}
