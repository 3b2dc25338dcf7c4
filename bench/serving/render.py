# ruff: noqa: E501  (Markdown table rows read better unbroken)
"""Rewrite the `serving` section of docs/benchmarks.md from bench/serving/results/*.json.
Run after either benchmark: .venv/bin/python bench/serving/render.py"""

from __future__ import annotations

from common import load_part, write_section


def sklearn_part() -> list[str]:
    data = load_part("sklearn_v2")
    if data is None:
        return ["_sklearn vs MLServer: not run yet (`python bench/serving/bench_sklearn_v2.py`)._"]
    ours, theirs = data["median"]["mdserve"], data["median"]["mlserver"]
    plain = data["median"].get("mdserve-no-batching")
    lines = [
        "### sklearn iris LogisticRegression, V2 JSON, mdserve vs MLServer 1.7",
        "",
        f"Reproduce: `.venv/bin/python {data['command'].removeprefix('python ')}` "
        "(creates `.bench-venv/mlserver` with mlserver 1.7 + mlserver-sklearn on first run, and `uvloop<0.22`: "
        "MLServer 1.7's inference-pool workers crash with newer uvloop).",
        f"Load generator: `wrk -t1 -c{data['connections']} -d{data['seconds']}s` with the same Lua POST script "
        f"for both, on the same machine ({data['machine']}), {data['rounds']} rounds each, alternating between the servers, after a 3 s warm-up; "
        "medians of the rounds. Both servers at their defaults (MLServer: 1 inference-pool worker process).",
        "",
        "| server | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---:|---:|---:|---:|",
        f"| mdserve | {ours['rps']:.0f} | {ours['p50_ms']:.2f} | {ours['p99_ms']:.2f} | {ours['non_2xx']:.0f} |",
        *(
            [
                f"| mdserve, micro-batching off | {plain['rps']:.0f} | {plain['p50_ms']:.2f} | {plain['p99_ms']:.2f} | "
                f"{plain['non_2xx']:.0f} |"
            ]
            if plain
            else []
        ),
        f"| MLServer 1.7 | {theirs['rps']:.0f} | {theirs['p50_ms']:.2f} | {theirs['p99_ms']:.2f} | "
        f"{theirs['non_2xx']:.0f} |",
        "",
        f"Ratios: throughput **{data['rps_ratio']:.1f}x** MLServer (goal >= 4x); "
        f"p99 **{data['p99_ratio']:.2f}x** MLServer's (goal <= 0.33x).",
        "",
        "Per-round numbers: "
        + "; ".join(
            f"{name}: " + ", ".join(f"{r['rps']:.0f} req/s p99 {r['p99_ms']:.1f} ms" for r in rounds)
            for name, rounds in data["runs"].items()
        ),
    ]
    return lines


def keras_part() -> list[str]:
    data = load_part("keras_tflite")
    if data is None:
        return ["_Keras float vs TFLite: not run yet (`python bench/serving/bench_keras_tflite.py`)._"]
    lines = [
        "### Keras MLP (20-64-64-4): float SavedModel vs TFLite variants",
        "",
        f"Reproduce: `.venv/bin/python {data['command'].removeprefix('python ')}`. In-process: one runtime call "
        "(median of 200 single-row calls). HTTP: sequential V2 JSON requests over one keep-alive connection "
        "(first 10% discarded). Accuracy on 1000 held-out rows; agreement = same arg-max class as the float model.",
        "",
        "| variant | size bytes | in-process ms/row (p50) | HTTP p50 ms | HTTP p99 ms | accuracy | delta | agreement |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = data["float"]["report"]
    rows = [
        (
            "float SavedModel",
            base["original_bytes"],
            base["original_ms_single_row"],
            data["float"]["http"],
            base["original_metric"],
            1.0,
        )
    ]
    for mode, variant in data["variants"].items():
        report = variant["report"]
        rows.append(
            (
                f"TFLite {mode}",
                report["converted_bytes"],
                report["converted_ms_single_row"],
                variant["http"],
                report["converted_metric"],
                report["agreement"],
            )
        )
    for name, size, single, http, accuracy, agreement in rows:
        lines.append(
            f"| {name} | {size} | {single:.4f} | {http['p50_ms']:.3f} | {http['p99_ms']:.3f} | {accuracy:.4f} | "
            f"{accuracy - base['original_metric']:+.4f} | {agreement:.4f} |"
        )
    concurrency = data.get("concurrency")
    if concurrency:
        on, off = concurrency["batched"], concurrency["unbatched"]
        lines += [
            "",
            "Float SavedModel under `wrk -t1 -c16 -d10s` (single-row V2 requests), adaptive micro-batching on vs off:",
            "",
            "| micro-batching | req/s | p50 ms | p99 ms |",
            "|---|---:|---:|---:|",
            f"| on (default) | {on['rps']:.0f} | {on['p50_ms']:.2f} | {on['p99_ms']:.2f} |",
            f"| off | {off['rps']:.0f} | {off['p50_ms']:.2f} | {off['p99_ms']:.2f} |",
            "",
            f"Ratio: {on['rps'] / off['rps']:.1f}x the throughput with micro-batching.",
        ]
    return lines


def main() -> None:
    body = ["## Model server (serving)", "", *sklearn_part(), "", *keras_part()]
    write_section("\n".join(body))


if __name__ == "__main__":
    main()
