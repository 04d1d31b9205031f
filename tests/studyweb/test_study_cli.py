"""`gazelab study ...` through the real console entry point."""
import io

import pytest
from sqlalchemy import select

from studyweb import db


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'instance' / 'gazelab.db'}"


def _session(url):
    engine = db.make_engine(url)
    return engine, db.session_factory(engine)()


def test_init_db(run_cli, url):
    from studyweb.db.revisions import head_revision

    code, out, _ = run_cli("study", "init-db", "--db", url)
    assert code == 0 and f"revision {head_revision()}" in out


def test_create_admin_reads_the_password_from_stdin_and_hashes_it(run_cli, url, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    code, out, _ = run_cli("study", "create-admin", "--username", "ana", "--password-stdin", "--db", url)
    assert code == 0 and "admin 'ana' created" in out
    engine, session = _session(url)
    admin = session.scalars(select(db.Admin)).one()
    assert admin.username == "ana" and "correct horse" not in admin.password_hash
    assert admin.check_password("correct horse")
    session.close()
    engine.dispose()


def test_create_admin_refuses_a_short_password(run_cli, url, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, _, err = run_cli("study", "create-admin", "--password-stdin", "--db", url)
    assert code == 2 and err.count("\n") == 1 and "at least 8 characters" in err


def test_create_experiment_prints_the_link_then_status_and_maps(run_cli, url, dataset, tmp_path):
    code, out, _ = run_cli("study", "create-experiment", "--dataset", dataset.path, "--name", "pilot-1",
                           "--per-participant", 2, "--observers", 3, "--sides", "x", "--completion-code", "ABC",
                           "--db", url)
    assert code == 0, out
    assert "3 stimuli, completion code ABC" in out and "http://127.0.0.1:5000/s/pilot-1" in out
    code, out, _ = run_cli("study", "status", "pilot-1", "--db", url)
    assert code == 0 and "3 stimuli, 3 observers wanted" in out and "current maps: 0" in out
    code, out, _ = run_cli("study", "build-maps", "pilot-1", "--db", url)
    assert code == 0 and "0 built, 0 unchanged, 3 without clicks" in out
    code, out, _ = run_cli("study", "export", "pilot-1", "--csv", tmp_path / "csv", "--db", url)
    assert code == 0 and (tmp_path / "csv" / "clicks.csv").is_file()


def test_bad_dataset_path_is_one_line_exit_2(run_cli, url, tmp_path):
    code, out, err = run_cli("study", "create-experiment", "--dataset", tmp_path / "nope", "--name", "x",
                             "--db", url)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "is not a gazelab dataset" in err


@pytest.mark.parametrize("args, message", [
    (("status", "missing"), "no experiment named 'missing'"),
    (("export", "missing"), "--to DATASET and/or --csv DIR"),
])
def test_user_errors_are_one_line(run_cli, url, args, message):
    code, _, err = run_cli("study", *args, "--db", url)
    assert code == 2 and err.count("\n") == 1 and message in err


def test_bad_settings_are_one_line(run_cli, url, dataset):
    code, _, err = run_cli("study", "create-experiment", "--dataset", dataset.path, "--name", "Bad Name!",
                           "--db", url)
    assert code == 2 and "experiment name 'Bad Name!'" in err
    code, _, err = run_cli("study", "create-experiment", "--dataset", dataset.path, "--name", "ok",
                           "--sides", "x,z", "--db", url)
    assert code == 2 and "sides must be" in err
