"""Bar chart of a bench/peers.py run: `python chart.py RESULTS.json OUT.png` (needs matplotlib).

Run with bench/.venv-peers/bin/python, where bench/peers.py installs matplotlib.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def colour(name: str) -> str:
    if name.startswith("prefork"):
        return "#2b6cb0"
    return "#a0aec0" if name == "nginx" else "#ed8936"


def main(data_path: str, out_path: str) -> None:
    data = json.load(open(data_path))
    rows = [(name, m) for name, m in data["medians"].items() if m]
    rows.sort(key=lambda row: row[1]["rps"])
    names = [name for name, _ in rows]
    colours = [colour(name) for name in names]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 0.5 * len(rows) + 1.8), sharey=True)
    rps = [m["rps"] / 1000 for _, m in rows]
    cpu = [m["cpu_us_per_request"] for _, m in rows]
    left.barh(names, rps, color=colours)
    left.set_xlabel("thousand requests/s (higher is better)")
    right.barh(names, cpu, color=colours)
    right.set_xlabel("server CPU per request, us (lower is better)")
    for axis, values, fmt in ((left, rps, "{:.1f}k"), (right, cpu, "{:.1f}")):
        for index, value in enumerate(values):
            axis.text(value, index, " " + fmt.format(value), va="center", fontsize=9)
        axis.set_xlim(0, max(values) * 1.2)
        axis.grid(axis="x", alpha=0.3)
    machine = data["machine"]
    figure.suptitle(f"Hello World, 1 worker on 1 core, wrk -t1 -c64 on the other; medians of "
                    f"{max(m['rounds'] for _, m in rows)} round(s)\n{machine['cpu']}, Python {machine['python']}, "
                    f"{machine['date']}", fontsize=10)
    figure.tight_layout()
    figure.savefig(out_path, dpi=100)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
