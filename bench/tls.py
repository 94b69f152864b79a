"""TLS: one prefork worker against nginx with the same certificate, in the same run.

    python bench/tls.py [--rounds 3] [--duration 10] [--quick] [--no-doc]

A self-signed ECDSA P-256 certificate for 127.0.0.1 is made with the openssl command; prefork
(built-in site, `-w 1 --certfile --keyfile`) and nginx (`worker_processes 1`, `listen ... ssl`,
the same certificate, `access_log off`, `return 200 "Hello, World!"`) serve /plaintext over TLS
1.3 on core 0; `wrk -t1 -c64` on core 1 keeps its connections alive, so the handshakes are a
small part and the figure is the cost of HTTP over TLS records. Aim: at least 0.7x nginx's
requests/s. Writes the "tls" section of docs/benchmarks.md.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import core  # noqa: E402  (a script run as `python bench/tls.py`)
import harness  # noqa: E402

SECTION = "tls"
TARGET = 0.7

# bench/core.py's nginx, its listener with TLS and the certificate
TLS_SERVER = """
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;"""


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def specs(cert: Path, key: Path) -> list[harness.ServerSpec]:
    prefork = shutil.which("prefork") or sys.exit("the prefork command is not installed: pip install -e .")

    def nginx_setup(port: int, workdir: Path) -> list[str]:
        conf_dir = Path(tempfile.mkdtemp(prefix="nginx-", dir=workdir))
        (conf_dir / "nginx.conf").write_text(core.NGINX_CONF.format(
            dir=conf_dir, port=port, listen=" ssl", server=TLS_SERVER.format(cert=cert, key=key)))
        return [harness.NGINX, "-p", str(conf_dir), "-c", str(conf_dir / "nginx.conf")]

    return [
        harness.ServerSpec("prefork TLS", [prefork, "-w", "1", "-b", "127.0.0.1:{port}", "--certfile", str(cert),
                                           "--keyfile", str(key)], scheme="https",
                           env={"PYTHONPATH": str(harness.REPO)},
                           note="built-in site, `-w 1 --certfile CERT --keyfile KEY`, no access log"),
        harness.ServerSpec("nginx TLS", [harness.NGINX], setup=nginx_setup, scheme="https",
                           note="`worker_processes 1; access_log off;`, `listen ... ssl` with the same "
                                "certificate and key, `return 200 \"Hello, World!\"`; full config in bench/core.py and bench/tls.py"),
    ]


def report(results: dict, info: dict, args, all_specs) -> str:
    med = {name: harness.medians(runs) for name, runs in results.items()}
    ours, theirs = med.get("prefork TLS"), med.get("nginx TLS")
    rps = ours["rps"] / theirs["rps"] if ours and theirs else None
    cpu = ours["cpu_us_per_request"] / theirs["cpu_us_per_request"] if ours and theirs else None
    lines = [
        "## TLS vs nginx",
        "",
        f"Headline: keep-alive /plaintext over TLS, prefork vs nginx with the same certificate: requests/s "
        f"**{harness.fmt_ratio(rps)}**, CPU per request **{harness.fmt_ratio(cpu)}** (aim: at least "
        f"{TARGET}x nginx's requests/s -- {'met' if rps is not None and rps >= TARGET else 'NOT met'}).",
        "",
        "Command:",
        "",
        f"    python bench/tls.py --rounds {args.rounds} --duration {args.duration:g}",
        "",
        *harness.machine_lines(info),
        f"- {args.rounds} interleaved rounds x {args.duration:g} s, `wrk -t1 -c64 -d{args.duration:g}s --latency "
        "https://127.0.0.1:PORT/plaintext` on core 1 (one head repeated, connections kept alive), server on core 0; "
        "medians over rounds; a self-signed ECDSA P-256 certificate, TLS 1.3 as both negotiate",
        "",
        *harness.results_table(med, "nginx TLS"),
    ]
    lines += ["", *harness.round_table(results, args.rounds), "", "Servers:", ""]
    lines += [f"- {spec.name}: {spec.note}" for spec in all_specs]
    return "\n".join(lines)


def main() -> int:
    args, info = harness.against_nginx_arguments(__doc__.split("\n\n")[0], rounds=3, duration=10.0)
    with tempfile.TemporaryDirectory(prefix="prefork-bench-tls-") as workdir:
        cert, key = make_certificate(Path(workdir))
        all_specs = specs(cert, key)
        harness.progress(f"TLS benchmark: {args.rounds} rounds x {len(all_specs)} servers x {args.duration:g} s")
        results = harness.run_rounds(all_specs, args.rounds, args.duration, args.warmup, Path(workdir),
                                     **harness.rounds_options(args))
    info["load_after"] = harness.loadavg()
    harness.save_and_publish(SECTION, info, results, report(results, info, args, all_specs), not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
