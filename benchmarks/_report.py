"""Turn one run's results into the markdown table, the target checks and the chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Rows of the throughput table: (key, label, ratio against this key or None).
ROWS = [
    ("raw_httpx", "raw httpx, pool sized to C", None),
    ("wx_send_httpx", "wx.message.send, C workers", "raw_httpx"),
    ("send_many_httpx", "wx.message.send_many", "raw_httpx"),
    ("raw_httpx_aiohttp", "raw httpx on httpx-aiohttp", None),
    ("wx_send_aiohttp", "wx.message.send, C workers", "raw_httpx_aiohttp"),
    ("send_many_aiohttp", "wx.message.send_many", "raw_httpx_aiohttp"),
    ("raw_aiohttp", "raw aiohttp (reference)", None),
]
TRANSPORT = {
    "raw_httpx": "httpx",
    "wx_send_httpx": "httpx",
    "send_many_httpx": "httpx",
    "raw_httpx_aiohttp": "aiohttp",
    "wx_send_aiohttp": "aiohttp",
    "send_many_aiohttp": "aiohttp",
    "raw_aiohttp": "aiohttp",
}


def _median(results: dict[str, Any], key: str, c: int) -> float | None:
    by_c = results["matrix"]["medians"].get(key, {})
    value = by_c.get(c, by_c.get(str(c)))
    return None if value is None else float(value)


def _wechatpy_best(results: dict[str, Any]) -> tuple[float, int]:
    best, threads = 0.0, 0
    for t in results["settings"]["wechatpy_threads"]:
        value = _median(results, f"wechatpy_{t}", t) or 0.0
        if value > best:
            best, threads = value, t
    return best, threads


def checks(results: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """The issue's targets, each with whether this run met it and the figures behind it."""
    cs = results["settings"]["concurrency"]
    out: list[tuple[str, bool, str]] = []
    for transport, key, raw in (
        ("httpx", "wx_send_httpx", "raw_httpx"),
        ("aiohttp", "wx_send_aiohttp", "raw_httpx_aiohttp"),
    ):
        ratios = [(_median(results, key, c) or 0) / (_median(results, raw, c) or 1) for c in cs]
        out.append(
            (
                f"wx.message.send >= 0.9x raw httpx ({transport} transport) at every C",
                min(ratios) >= 0.9,
                "ratios " + ", ".join(f"C={c}: {r:.2f}" for c, r in zip(cs, ratios, strict=True)),
            )
        )
    ratios = [
        (_median(results, "send_many_aiohttp", c) or 0)
        / (_median(results, "raw_httpx_aiohttp", c) or 1)
        for c in cs
    ]
    out.append(
        (
            "send_many (aiohttp) >= 0.9x raw httpx-aiohttp at every C",
            min(ratios) >= 0.9,
            "ratios " + ", ".join(f"C={c}: {r:.2f}" for c, r in zip(cs, ratios, strict=True)),
        )
    )
    best, threads = _wechatpy_best(results)
    bulk = [c for c in cs if c >= 16]
    multiples = [(_median(results, "send_many_aiohttp", c) or 0) / (best or 1) for c in bulk]
    out.append(
        (
            f"send_many (aiohttp) >= 2x wechatpy's best ({best:,.0f} msgs/s, {threads} threads) "
            "at C >= 16 (the default max_concurrency and up)",
            bool(multiples) and min(multiples) >= 2.0,
            ", ".join(f"C={c}: {m:.2f}x" for c, m in zip(bulk, multiples, strict=True)),
        )
    )
    media = results.get("media_send_many")
    if media:
        out.append(
            (
                "send_many of a picture from a file (cache warm) >= 0.9x by a known media_id, "
                "one upload per cold cache",
                media["warm_ratio"] >= 0.9 and media["uploads"] == media["reps"],
                f"{media['warm_ratio']:.2f}x warm, {media['cold_ratio']:.2f}x cold (its upload "
                f"included); {media['uploads']} upload(s) for {media['reps']} cold run(s)",
            )
        )
    memory = results["streaming_memory"]
    out.append(
        (
            f"streaming send to {memory['recipients']:,} recipients: peak RSS < 100 MB",
            memory["peak_rss_mb"] < 100,
            f"peak {memory['peak_rss_mb']:.1f} MB (after imports and setup "
            f"{memory['rss_before_mb']:.1f} MB)",
        )
    )
    return out


def render(results: dict[str, Any]) -> str:
    """The markdown report of one run."""
    settings = results["settings"]
    cs: list[int] = settings["concurrency"]
    env = results["environment"]
    lines = [
        f"Loopback, one client core, N={settings['n']} text messages per measurement, "
        f"median of {settings['reps']} interleaved runs; msgs/s (ratio against raw httpx on "
        f"the same transport). Python {env['python']}, {env['cpu']}; "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v),
        "",
        "| client | transport | " + " | ".join(f"C={c}" for c in cs) + " |",
        "|---|---|" + "---:|" * len(cs),
    ]
    for key, label, against in ROWS:
        cells = []
        for c in cs:
            value = _median(results, key, c)
            if value is None:
                cells.append("")
                continue
            cell = f"{value:,.0f}"
            base = _median(results, against, c) if against else None
            if base:
                cell += f" ({value / base:.2f}×)"
            cells.append(cell)
        lines.append(f"| {label} | {TRANSPORT[key]} | " + " | ".join(cells) + " |")
    for t in settings["wechatpy_threads"]:
        value = _median(results, f"wechatpy_{t}", t)
        if value is not None:
            lines.append(
                f"| wechatpy (sync, requests), {t} threads | requests | "
                + " | ".join("" for _ in cs[:-1])
                + f" | {value:,.0f} (any C: {t} threads) |"
            )
    ceiling = results["server_ceiling"]
    lines += [
        "",
        f"Server: {ceiling['server_requests_per_cpu_second']:,.0f} requests per CPU-second on its "
        f"own core (its ceiling); the fastest client (raw aiohttp, C={ceiling['concurrency']:.0f}, "
        f"{ceiling['client_rate']:,.0f} msgs/s) kept it {ceiling['server_utilisation']:.0%} busy; "
        f"busiest during the table: {results['matrix']['max_server_utilisation']:.0%}.",
        "",
    ]
    lines.append("Targets:")
    for name, ok, detail in checks(results):
        lines.append(f"- {'PASS' if ok else 'MISS'}: {name}: {detail}")
    lines.append("")
    for flight in results["single_flight"]:
        lines.append(
            f"Token single-flight ({flight['backend']}): {flight['callers']:,} concurrent cold "
            f"calls -> {flight['token_requests']} token request(s), "
            f"{flight['distinct_tokens']} distinct token(s), {flight['seconds'] * 1000:.0f} ms."
        )
    media = results.get("media_send_many")
    if media:
        lines.append(render_media(media))
    imports = results["import_time"]
    lines.append(
        f"Import time (median of {imports['repeat']} fresh interpreters): import wechat_kf "
        f"{imports['wechat_kf']:.0f} ms (httpx alone {imports['httpx']:.0f} ms; without click "
        f"and rich installed, which httpx imports for its CLI, "
        f"{imports['wechat_kf_without_click_rich']:.0f} ms); to a ready client "
        f"(AsyncWeChat(...).message) {imports['wechat_kf_client_ready']:.0f} ms."
    )
    memory = results["streaming_memory"]
    lines.append(
        f"Streaming send (stream_many, C={memory['concurrency']}) to {memory['recipients']:,} "
        f"recipients: peak RSS {memory['peak_rss_mb']:.1f} MB (after imports and setup "
        f"{memory['rss_before_mb']:.1f} MB), {memory['seconds']:.0f} s, "
        f"{memory['sent']:,} sent (in-process stub transport)."
    )
    lines.append(f"Whole run: {results['duration_seconds']:.0f} s.")
    return "\n".join(lines)


def render_media(media: dict[str, Any]) -> str:
    """The line of the picture comparison (``send_many`` from a file vs by media_id)."""
    return (
        f"send_many of one picture ({media['picture_bytes'] // 1024} KB, N={media['n']}, "
        f"C={media['concurrency']}, {media['transport']}, median of {media['reps']}): by a known "
        f"media_id {media['known_media_id']:,.0f} msgs/s; from a file on a warm cache "
        f"{media['file_warm']:,.0f} msgs/s ({media['warm_ratio']:.2f}×); from a file on a cold "
        f"cache, its one upload included, {media['file_cold']:,.0f} msgs/s "
        f"({media['cold_ratio']:.2f}×); uploads the server received: {media['uploads']} "
        f"({media['reps']} cold runs)."
    )


def chart(results: dict[str, Any], path: Path) -> Path | None:
    """Throughput against concurrency, one line per client; ``None`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart")
        return None
    cs: list[int] = results["settings"]["concurrency"]
    styles = {
        "raw_httpx": ("raw httpx", "tab:blue", "--", "o"),
        "wx_send_httpx": ("wx.message.send (httpx)", "tab:blue", "-", "s"),
        "send_many_httpx": ("send_many (httpx)", "tab:blue", ":", "^"),
        "raw_httpx_aiohttp": ("raw httpx + aiohttp transport", "tab:orange", "--", "o"),
        "wx_send_aiohttp": ("wx.message.send (aiohttp)", "tab:orange", "-", "s"),
        "send_many_aiohttp": ("send_many (aiohttp)", "tab:orange", ":", "^"),
        "raw_aiohttp": ("raw aiohttp (reference)", "tab:gray", "-.", "x"),
    }
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    for key, (label, color, style, marker) in styles.items():
        ys = [_median(results, key, c) for c in cs]
        if any(y is None for y in ys):
            continue
        ax.plot(cs, ys, style, color=color, marker=marker, label=label, linewidth=1.6)
    best, threads = _wechatpy_best(results)
    if best:
        ax.axhline(best, color="tab:green", linewidth=1.2, label=f"wechatpy, {threads} threads")
    ax.set_xscale("log", base=2)
    ax.set_xticks(cs, [str(c) for c in cs])
    ax.set_xlabel("requests in flight (C)")
    ax.set_ylabel("messages per second")
    ax.set_ylim(bottom=0)
    settings = results["settings"]
    ax.set_title(
        f"wechat_kf throughput, loopback, one client core (median of {settings['reps']})",
        fontsize=10,
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
