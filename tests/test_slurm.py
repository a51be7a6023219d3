"""The workflow on a real SLURM cluster, through profiles/slurm, gives the bytes of a local run.

tests/slurm/install_slurm.sh installs Debian's SLURM (slurmctld, slurmd, slurmdbd with
MariaDB for the accounting that the executor plugin's `sacct` needs, MUNGE) and starts a
one-node cluster on 127.0.0.1; tests/slurm/stop_slurm.sh stops it and removes its state.
The workflow runs on the small test corpus once locally (profiles/local) and once with
`--profile profiles/slurm`, where the test overrides only what a user edits: account,
partition, the GPU request (the test node has no GPU) and memory (kept small), plus a
short first status check. Needs root and apt-get; skipped otherwise.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from helpers import REPO, make_small_corpus, run_snakemake, workflow_config

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

SLURM_DIR = Path("/tmp/wakeprep-slurm-test")
ACCOUNT = "wakeprep_ci"
PARTITION = "ci"
TEST_MEM_MB = 1000  # every job's memory request on the test node
PROFILE = REPO / "profiles" / "slurm"
ETC_CONF = Path("/etc/slurm/slurm.conf")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root: installs Debian's SLURM packages and runs its daemons"
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        return "needs apt-get (Debian/Ubuntu) to install SLURM"
    if ETC_CONF.exists() and not (ETC_CONF.is_symlink() and Path(os.readlink(ETC_CONF)).is_relative_to(SLURM_DIR)):
        return f"{ETC_CONF} exists: a SLURM is configured on this machine; the test does not touch it"
    return None


def _free_port_base(start=16817, span=4) -> int:
    """The first port >= start with ``span`` free consecutive TCP ports on 127.0.0.1."""
    for base in range(start, start + 400, span):
        try:
            socks = []
            for port in range(base, base + span):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free ports for the test cluster")


def _daemon_logs() -> str:
    out = []
    for log in sorted((SLURM_DIR / "log").glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-15:]
        out.append(f"--- {log.name}\n" + "\n".join(lines))
    return "\n".join(out)


@pytest.fixture(scope="module")
def slurm_cluster(request):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        pytest.fail("snakemake-executor-plugin-slurm is not installed: run ./setup.sh (it is in the test extra)")
    env = dict(os.environ, WAKEPREP_SLURM_DIR=str(SLURM_DIR), WAKEPREP_SLURM_ACCOUNT=ACCOUNT,
               WAKEPREP_SLURM_PARTITION=PARTITION)

    def stop():
        subprocess.run(["bash", str(REPO / "tests/slurm/stop_slurm.sh")], env=env, timeout=120,
                       capture_output=True, text=True)

    stop()  # leftovers of an interrupted earlier run
    request.addfinalizer(stop)
    env["WAKEPREP_SLURM_PORT"] = str(_free_port_base())
    t = time.monotonic()
    proc = subprocess.run(["bash", str(REPO / "tests/slurm/install_slurm.sh")], env=env, timeout=900,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"install_slurm.sh failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{_daemon_logs()}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", str(SLURM_DIR / "etc" / "slurm.conf"))
        yield {"install_s": time.monotonic() - t, "log": proc.stderr}


def _job_stats(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table: rule -> job count (without 'total')."""
    stats, inside = {}, False
    for line in output.splitlines():
        if line.startswith("Job stats:"):
            stats, inside = {}, True
            continue
        if inside:
            m = re.match(r"^(\w+)\s+(\d+)\s*$", line)
            if m and m.group(1) != "total":
                stats[m.group(1)] = int(m.group(2))
            elif m or (line.strip() and not line.startswith(("job", "---"))):
                inside = False
    return stats


def _slurm_overrides() -> list[str]:
    """The profile's default-resources and set-resources, with what a user edits
    replaced by the test cluster's values."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    defaults = dict(profile["default-resources"], slurm_account=ACCOUNT, slurm_partition=PARTITION)
    defaults["mem_mb"] = min(int(defaults.get("mem_mb", TEST_MEM_MB)), TEST_MEM_MB)
    sets = []
    for rule, res in (profile.get("set-resources") or {}).items():
        res = dict(res)
        if "slurm_partition" in res:
            res["slurm_partition"] = PARTITION
        if "gpu" in res:  # no GPU on the test node (and the test config runs augment on the CPU)
            res["gpu"] = 0
        if "mem_mb" in res:
            res["mem_mb"] = min(int(res["mem_mb"]), TEST_MEM_MB)
        sets += [f"{rule}:{k}={v}" for k, v in res.items()]
    args = ["--default-resources", *[f"{k}={v}" for k, v in defaults.items()]]
    if sets:
        args += ["--set-resources", *sets]
    return args


def _outputs(results: Path) -> dict[str, Path]:
    """Every output file under results/, without logs, benchmarks and Snakemake's
    .snakemake_timestamp markers (they hold run-specific times)."""
    files = {}
    for p in sorted(results.rglob("*")):
        rel = p.relative_to(results)
        if p.is_dir() or rel.parts[0] in ("logs", "benchmarks") or p.name == ".snakemake_timestamp":
            continue
        if rel.as_posix().startswith("report/runtimes."):  # run times, from the benchmark files
            continue
        files[str(rel)] = p
    return files


def test_slurm_run_matches_local_run(slurm_cluster, tmp_path, have_espeak):
    corpora = make_small_corpus(tmp_path / "corpora", n_speech=12, n_noise=4)
    cfg = workflow_config(corpora, augment={"device": "cpu"})

    local = tmp_path / "local"
    local.mkdir()
    proc = run_snakemake(local, "--profile", str(REPO / "profiles" / "local"), config=cfg, timeout=600)
    # rule index is a local rule (it only writes results/index.json): never a SLURM job
    expected = {r: n for r, n in _job_stats(proc.stdout + proc.stderr).items() if r not in ("all", "index")}
    assert expected.get("convert") and expected.get("features"), proc.stderr

    cluster = tmp_path / "slurm"
    cluster.mkdir()
    t = time.monotonic()
    proc = run_snakemake(cluster, "--profile", str(PROFILE), *_slurm_overrides(),
                         "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs",
                         config=cfg, check=False, timeout=900)
    slurm_s = time.monotonic() - t
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"SLURM run failed ({proc.returncode}):\n{out[-12000:]}\n{_daemon_logs()}"

    # Every job of the workflow (all but the target rule `all`) ran as a SLURM job that
    # completed, under the test account and partition.
    job_ids = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    assert job_ids, out[-5000:]
    sacct = subprocess.run(["sacct", "-X", "-n", "-P", "-j", ",".join(job_ids), "-o",
                            "JobID,State,Account,Partition,Comment%200"],
                           capture_output=True, text=True, check=True).stdout
    done: dict[str, int] = {}
    for line in sacct.splitlines():
        jobid, state, account, partition, comment = line.split("|", 4)
        assert (account, partition) == (ACCOUNT, PARTITION), line
        if state == "COMPLETED":
            rule = comment.removeprefix("rule_").split("_wildcards_")[0]
            done[rule] = done.get(rule, 0) + 1
    assert done == expected, f"completed SLURM jobs per rule {done}, local run's jobs {expected}\n{sacct}"

    # Same bytes.
    a, b = _outputs(local / "results"), _outputs(cluster / "results")
    assert sorted(a) == sorted(b), f"only local: {sorted(set(a) - set(b))}; only SLURM: {sorted(set(b) - set(a))}"
    differ = [rel for rel in a if not filecmp.cmp(a[rel], b[rel], shallow=False)]
    assert not differ, f"{len(differ)} of {len(a)} output files differ between the local and the SLURM run: {differ}"

    summary = (f"SLURM test: {len(job_ids)} SLURM jobs, {len(a)} identical output files; "
                f"cluster up in {slurm_cluster['install_s']:.0f} s, SLURM run {slurm_s:.0f} s")
    print(summary)
    (tmp_path / "timing.txt").write_text(summary + "\n")


def test_slurm_profile_reaches_every_rule(tmp_path, have_espeak):
    """Without a cluster: profiles/slurm parses, names only existing rules in
    set-resources, and its values reach the jobs (a dry run shows their resources)."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    for key in ("slurm_account", "slurm_partition", "runtime", "mem_mb"):
        assert key in profile["default-resources"], key
    assert profile["restart-times"] >= 1 and profile["latency-wait"] >= 30 and profile["jobs"] >= 1
    assert profile["set-resources"]["augment"]["gpu"] >= 1

    corpora = make_small_corpus(tmp_path / "corpora", n_speech=4, n_noise=2)
    work = tmp_path / "work"
    work.mkdir()
    proc = run_snakemake(work, "--profile", str(PROFILE), "--dry-run",
                         config=workflow_config(corpora, augment={"device": "cuda"}), timeout=300)
    out = proc.stdout + proc.stderr
    rules = set(re.findall(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):", out, re.M))
    unknown = set(profile["set-resources"]) - set(re.findall(r"^(?:rule|checkpoint) (\w+):", _rule_sources(), re.M))
    assert not unknown, f"set-resources names rules that do not exist: {unknown}"
    blocks = re.split(r"\n(?=\s*(?:local)?(?:rule|checkpoint) \w+:)", out)
    for block in blocks:
        m = re.match(r"\s*(?:local)?(?:rule|checkpoint) (\w+):", block)
        if not m or m.group(1) not in profile["set-resources"]:
            continue
        res = re.search(r"resources: (.*)", block).group(1)
        for key, value in profile["set-resources"][m.group(1)].items():
            if key == "slurm_partition":
                assert f"slurm_partition={value}" in res, (m.group(1), res)
            elif key in ("mem_mb", "gpu", "runtime"):
                assert f"{key}={value}" in res, (m.group(1), key, res)
    assert "convert" in rules


def _rule_sources() -> str:
    return "\n".join(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))
