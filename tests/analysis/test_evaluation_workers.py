"""`gazelab evaluate --workers N`: a method's pairs scored in N processes give the same files as one."""
import json
import os

import pandas as pd
import pytest
import torch

from gazelab.evaluation import evaluate, parse_methods


@pytest.fixture
def hag_checkpoint(run_cli, data, tmp_path):
    """A HAG editor (nothing to train) guided by a 2-step SalG-GAN detector, on the tiny dataset."""
    code, _, err = run_cli("train", "predictor", "salg_detector", "--data", data, "--preset",
                           "tiny", "--steps", 2, "--batch-size", 1, "--out", tmp_path / "det", "--device", "cpu",
                           "--no-progress")
    assert code == 0, err
    code, _, err = run_cli("train", "editor", "hag", "--data", data, "--preset", "tiny",
                           "--predictor", tmp_path / "det/checkpoints/last.pt", "--out", tmp_path / "hag",
                           "--device", "cpu", "--no-progress")
    assert code == 0, err
    return tmp_path / "hag/checkpoints/last.pt"


def _scores(out):
    table = pd.read_csv(out / "per_image.csv").drop(columns=["seconds"])
    return table.sort_values(["method", "pair_id"]).reset_index(drop=True)


def test_two_workers_score_every_method_as_one_process_does(data, outputs, centre_bias, hag_checkpoint, tmp_path,
                                                         monkeypatch):
    # HAG optimises each image: its floats depend on torch's thread count, so both runs use one thread
    # (two workers on two cores get one each).
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    methods = parse_methods([f"oracle={outputs['oracle']}", f"hag={hag_checkpoint}"])
    try:
        one = evaluate(data, methods, tmp_path / "one", predictor=centre_bias, fid=False, c2st=False, progress=False,
                       _random_weights_for_tests=True)
    finally:
        torch.set_num_threads(threads)
    two = evaluate(data, methods, tmp_path / "two", predictor=centre_bias, fid=False, c2st=False, progress=False,
                   workers=2, _random_weights_for_tests=True)
    assert two["methods"]["hag"]["sharding"] == {"shards": 2, "where": "processes", "torch_threads_per_worker": 1}
    pd.testing.assert_frame_equal(_scores(tmp_path / "one"), _scores(tmp_path / "two"))
    assert len(_scores(tmp_path / "two")) == 3 * 4  # input, oracle and hag on the 4 test pairs
    for name in ("input", "oracle", "hag"):
        assert one["methods"][name]["skipped_metrics"] == two["methods"][name]["skipped_metrics"]
        rows = (tmp_path / "two" / "metrics" / f"{name}.jsonl").read_text().splitlines()
        assert sorted(json.loads(r)["pair_id"] for r in rows) == ["p0", "p1", "p2", "p3"]
        assert not (tmp_path / "two" / "metrics" / f"{name}.shards").exists()
    assert two["methods"]["hag"]["editor"] == "hag"
    for pair_id in ("p0", "p1", "p2", "p3"):  # every output written once, by the worker of its shard
        assert (tmp_path / "one/outputs/hag" / f"{pair_id}.png").read_bytes() == \
            (tmp_path / "two/outputs/hag" / f"{pair_id}.png").read_bytes()


def test_a_rerun_keeps_the_rows_an_interrupted_sharded_run_left(data, outputs, tmp_path):
    """A killed sharded run leaves its workers' rows under METHOD.shards/: the rerun merges them
    (a half-written last line is dropped and that pair scored again) and scores only the rest."""
    methods = parse_methods([f"oracle={outputs['oracle']}"])
    out = tmp_path / "eval"
    evaluate(data, methods, out, fid=False, c2st=False, progress=False, workers=2)
    rows = {json.loads(line)["pair_id"]: line for line in (out / "metrics/oracle.jsonl").read_text().splitlines()}
    (out / "metrics/oracle.jsonl").write_text(rows["p0"] + "\n")
    shards = out / "metrics/oracle.shards"
    shards.mkdir()
    (shards / "0.jsonl").write_text(rows["p2"] + "\n")
    (shards / "1.jsonl").write_text(rows["p1"] + "\n" + rows["p3"][:20])
    lines = []
    evaluate(data, methods, out, fid=False, c2st=False, progress=False, workers=2, echo=lines.append)
    assert "  oracle: 3 pairs scored before, 1 to go in 1 shard(s) on 1 processes" in lines
    assert sorted(json.loads(r)["pair_id"] for r in (out / "metrics/oracle.jsonl").read_text().splitlines()) == \
        ["p0", "p1", "p2", "p3"]


@pytest.mark.ray
@pytest.mark.slow
def test_shards_as_ray_tasks_score_as_one_process_does(data, outputs, centre_bias, tmp_path):
    pytest.importorskip("ray")
    methods = parse_methods([f"oracle={outputs['oracle']}"])
    evaluate(data, methods, tmp_path / "one", predictor=centre_bias, fid=False, c2st=False, progress=False)
    record = evaluate(data, methods, tmp_path / "ray", predictor=centre_bias, fid=False, c2st=False, progress=False,
                      workers=2, ray_address="local")
    pd.testing.assert_frame_equal(_scores(tmp_path / "one"), _scores(tmp_path / "ray"))
    assert record["methods"]["oracle"]["sharding"]["where"] == "ray"
    assert not (tmp_path / "ray" / "metrics" / "oracle.shards").exists()


def test_bad_worker_counts_are_refused(data, outputs, tmp_path, run_cli):
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        evaluate(data, parse_methods([f"oracle={outputs['oracle']}"]), tmp_path / "e", workers=0)
    code, out, err = run_cli("evaluate", "--data", data, "--methods", f"oracle={outputs['oracle']}", "--workers", "0",
                             "--out", tmp_path / "e")
    assert code == 2 and "Traceback" not in err and "--workers" in err
