"""settings.toml is checked on load: a wrong value names its table and key, and nothing starts."""

from __future__ import annotations

import logging
import subprocess
import sys
import typing
from dataclasses import fields
from pathlib import Path

import pytest

from engine.config import (
    LANES,
    SETTINGS_FILE,
    DetectSettings,
    LabelSettings,
    ModelSettings,
    OcrSettings,
    Settings,
    TagSettings,
    WorkerSettings,
    load_settings,
    save_settings,
    setting_keys,
)
from engine.errors import SettingsError, ShoeboxError
from tests.conftest import REPO, cli_env


def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SETTINGS_FILE
    path.write_text(text, encoding="utf-8")
    return path


def problem(folder: Path, text: str) -> SettingsError:
    write(folder, text)
    with pytest.raises(SettingsError) as info:
        load_settings(folder)
    return info.value


def test_text_where_a_number_belongs_names_the_key(tmp_path: Path) -> None:
    error = problem(tmp_path, '[general]\nqueue_depth_per_worker = "4"\n')
    assert isinstance(error, ShoeboxError)
    assert str(error) == (
        f"{tmp_path / SETTINGS_FILE}: [general] queue_depth_per_worker must be a whole "
        'number ≥ 1, not the text "4"'
    )
    assert error.path == tmp_path / SETTINGS_FILE
    assert len(error.problems) == 1


def test_zero_workers_is_an_error_not_one(tmp_path: Path) -> None:
    error = problem(tmp_path, "[workers]\nimport = 0\n")
    assert "[workers] import must be a whole number ≥ 1, not 0" in str(error)


@pytest.mark.parametrize("key", ["pool", "interactive", "batch", "learning"])
def test_every_lane_and_the_pool_need_one_worker(tmp_path: Path, key: str) -> None:
    error = problem(tmp_path, f"[workers]\n{key} = -1\n")
    assert f"[workers] {key} must be a whole number ≥ 1, not -1" in str(error)


def test_a_bool_is_not_a_number(tmp_path: Path) -> None:
    error = problem(tmp_path, "[general]\nmax_attempts = true\n")
    assert "[general] max_attempts must be a whole number ≥ 1, not the yes/no value true" in str(
        error
    )
    error = problem(tmp_path, "[general]\nretry_base_s = false\n")
    assert "[general] retry_base_s must be a number > 0" in str(error)


def test_a_number_is_not_a_bool(tmp_path: Path) -> None:
    error = problem(tmp_path, "[general]\nskip_hidden = 1\n")
    assert "[general] skip_hidden must be true or false, not 1" in str(error)


def test_bad_device(tmp_path: Path) -> None:
    error = problem(tmp_path, '[general]\ndevice = "gpu"\n')
    assert (
        '[general] device must be one of "auto", "cpu", "cuda", "mps", not the text "gpu"'
        in str(error)
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("retry_base_s = 0", "[general] retry_base_s must be a number > 0, not 0"),
        ("retry_cap_s = -1.5", "[general] retry_cap_s must be a number > 0, not -1.5"),
        ("stop_grace_s = 0.0", "[general] stop_grace_s must be a number > 0, not 0.0"),
        ("stop_grace_s = inf", "[general] stop_grace_s must be a number > 0, not inf"),
        (
            "model_idle_release_s = -1",
            "[general] model_idle_release_s must be a number ≥ 0, not -1",
        ),
        ("max_attempts = 0", "[general] max_attempts must be a whole number ≥ 1, not 0"),
        ("max_attempts = 2.5", "[general] max_attempts must be a whole number ≥ 1, not 2.5"),
        (
            "queue_depth_per_worker = [4]",
            "queue_depth_per_worker must be a whole number ≥ 1, not a list",
        ),
    ],
)
def test_out_of_range(tmp_path: Path, line: str, expected: str) -> None:
    assert expected in str(problem(tmp_path, f"[general]\n{line}\n"))


def test_floats_accept_whole_numbers(tmp_path: Path) -> None:
    write(tmp_path, "[general]\nretry_cap_s = 300\nretry_base_s = 1\nmodel_idle_release_s = 0\n")
    settings = load_settings(tmp_path)
    assert settings.retry_cap_s == 300.0 and isinstance(settings.retry_cap_s, float)
    assert settings.retry_base_s == 1.0 and isinstance(settings.retry_base_s, float)
    assert settings.model_idle_release_s == 0.0


def test_malformed_toml(tmp_path: Path) -> None:
    error = problem(tmp_path, "[general\nqueue_depth_per_worker = 4\n")
    assert str(error).startswith(f"{tmp_path / SETTINGS_FILE}: is not valid TOML: ")
    assert "line 1" in str(error)


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE).write_bytes(b'[general]\ndevice = "\xff"\n')
    with pytest.raises(SettingsError, match="is not valid TOML"):
        load_settings(tmp_path)


def test_a_table_that_is_not_a_table(tmp_path: Path) -> None:
    error = problem(tmp_path, "workers = 4\n")
    assert "[workers] must be a table, not 4" in str(error)


def test_every_problem_is_reported_together(tmp_path: Path) -> None:
    error = problem(
        tmp_path,
        '[general]\nqueue_depth_per_worker = "4"\ndevice = "gpu"\nskip_hidden = "no"\n'
        "[workers]\nimport = 0\nlearning = true\n",
    )
    lines = str(error).splitlines()
    assert len(lines) == 5 == len(error.problems)
    assert all(line.startswith(f"{tmp_path / SETTINGS_FILE}: [") for line in lines)
    for key in (
        "[general] queue_depth_per_worker",
        "[general] device",
        "[general] skip_hidden",
        "[workers] import",
        "[workers] learning",
    ):
        assert sum(key in line for line in lines) == 1, key


def test_unknown_keys_warn_and_are_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(
        tmp_path, "[general]\nfoo = 1\nmax_attempts = 5\n[workers]\nturbo = true\n[extra]\nx = 1\n"
    )
    with caplog.at_level(logging.WARNING, logger="shoebox.settings"):
        settings = load_settings(tmp_path)
    assert settings.max_attempts == 5
    assert settings.warnings == [
        "unknown table [extra] (ignored)",
        "unknown key [general] foo (ignored)",
        "unknown key [workers] turbo (ignored)",
    ]
    logged = [r.getMessage() for r in caplog.records if r.name == "shoebox.settings"]
    assert logged == [f"{tmp_path / SETTINGS_FILE}: {w}" for w in settings.warnings]


def test_no_file_means_defaults(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    assert settings == Settings()
    assert settings.workers.pool >= 2
    assert (settings.stop_grace_s, settings.model_idle_release_s) == (10.0, 600.0)
    assert [settings.workers.for_lane(lane) for lane in LANES] == [1, 2, 1, 1]


def test_round_trip_defaults(tmp_path: Path) -> None:
    save_settings(tmp_path, Settings())
    text = (tmp_path / SETTINGS_FILE).read_text(encoding="utf-8")
    assert (
        "[general]" in text
        and "[workers]" in text
        and f"import = {Settings().workers.import_}" in text
    )
    assert "warnings" not in text
    loaded = load_settings(tmp_path)
    assert loaded == Settings() and loaded.warnings == []


def test_round_trip_changed_values(tmp_path: Path) -> None:
    settings = Settings(
        workers=WorkerSettings(pool=6, import_=3),
        retry_cap_s=120.0,
        device="cpu",
        skip_hidden=False,
        stop_grace_s=2.5,
    )
    save_settings(tmp_path, settings)
    assert load_settings(tmp_path) == settings


def test_an_old_file_without_the_new_keys_loads(tmp_path: Path) -> None:
    write(
        tmp_path,
        "[general]\nqueue_depth_per_worker = 4\nmax_attempts = 3\nretry_base_s = 2.0\n"
        'retry_cap_s = 300.0\ndevice = "auto"\nskip_hidden = true\n\n'
        "[workers]\ninteractive = 1\nbatch = 1\nlearning = 1\n",
    )
    settings = load_settings(tmp_path)
    assert settings == Settings() and settings.warnings == []


def test_invalid_settings_are_never_saved(tmp_path: Path) -> None:
    save_settings(tmp_path, Settings())
    before = (tmp_path / SETTINGS_FILE).read_bytes()
    with pytest.raises(SettingsError, match=r"\[workers\] batch must be a whole number ≥ 1, not 0"):
        save_settings(tmp_path, Settings(workers=WorkerSettings(batch=0)))
    assert (tmp_path / SETTINGS_FILE).read_bytes() == before


def test_every_field_is_a_declared_setting() -> None:
    """Each dataclass field has a rule whose kind matches its annotation."""
    keys = setting_keys()
    assert [(t, k) for t, k, _ in keys] == [
        ("general", "queue_depth_per_worker"),
        ("general", "max_attempts"),
        ("general", "retry_base_s"),
        ("general", "retry_cap_s"),
        ("general", "stop_grace_s"),
        ("general", "model_idle_release_s"),
        ("general", "device"),
        ("general", "skip_hidden"),
        ("workers", "pool"),
        ("workers", "interactive"),
        ("workers", "import"),
        ("workers", "batch"),
        ("workers", "learning"),
        ("queue", "broker"),
        ("models", "embed"),
        ("models", "detect"),
        ("models", "text"),
        ("models", "download"),
        ("models", "embed_batch"),
        ("models", "detect_batch"),
        ("detect", "min_score"),
        ("tags", "min_score"),
        ("tags", "max_tags"),
        ("ocr", "enabled"),
        ("ocr", "languages"),
        ("ocr", "photos"),
        ("ocr", "page_timeout_s"),
        ("labels", "target_precision"),
        ("labels", "require_bound"),
        ("labels", "debounce_s"),
        ("labels", "weak_negatives"),
        ("labels", "review_pool"),
        ("background", "mode"),
        ("background", "idle_after_s"),
        ("background", "busy_cpu"),
        ("background", "nice"),
        ("background", "stage_limits"),
        ("background", "folder_limits"),
    ]
    assert all(doc for _, _, doc in keys)
    for cls in (
        Settings, WorkerSettings, ModelSettings, DetectSettings, TagSettings, OcrSettings,
        LabelSettings,
    ):  # fmt: skip
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            if "rule" in f.metadata:
                assert f.metadata["rule"].kind is hints[f.name], f.name


def test_library_refuses_bad_settings(tmp_path: Path) -> None:
    from engine.library import Library

    write(tmp_path / "lib", '[general]\nqueue_depth_per_worker = "4"\n')
    with pytest.raises(SettingsError, match="queue_depth_per_worker"):
        Library(tmp_path / "lib")
    assert (tmp_path / "lib" / SETTINGS_FILE).read_text(encoding="utf-8").count('"4"') == 1


def test_cli_reports_bad_settings_and_exits_2(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    path = write(lib, '[general]\nqueue_depth_per_worker = "4"\n[workers]\nimport = 0\n')
    out = subprocess.run(
        [sys.executable, "-m", "engine.cli", "--library", str(lib), "status"],
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert lines[0] == (
        f"shoebox: {path}: [general] queue_depth_per_worker "
        'must be a whole number ≥ 1, not the text "4"'
    )
    assert lines[1] == f"shoebox: {path}: [workers] import must be a whole number ≥ 1, not 0"
    assert "delete it" in lines[2] and str(path) in lines[2]


def test_config_keys_get_and_set_by_dotted_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOEBOX_NO_MODELS")  # the shipped defaults, not the tests'
    settings = Settings()
    assert settings.get("device") == "auto"
    assert settings.get("models.embed").startswith("open_clip:")
    changed = settings.with_value("detect.min_score", "0.25")
    assert changed.detect.min_score == 0.25 and settings.detect.min_score == 0.5
    assert settings.with_value("models.download", "no").models.download is False
    assert settings.with_value("models.detect", "").models.detect == ""
    with pytest.raises(SettingsError, match=r"\[models\] embed must be a model spec"):
        settings.with_value("models.embed", "resnet")
    with pytest.raises(SettingsError, match=r"\[detect\] min_score must be a number from 0 to 1"):
        settings.with_value("detect.min_score", "2")
    with pytest.raises(KeyError, match=r"unknown setting 'models\.nope'"):
        settings.get("models.nope")
