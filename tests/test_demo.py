"""The demo's command line: options are parsed before anything runs."""

import pytest

from brainsegfounder import demo


def test_help_prints_the_options_and_runs_nothing(capsys, monkeypatch):
    monkeypatch.setattr(demo, "run_demo", lambda **kw: pytest.fail("--help must not start the demo"))
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--help"])
    assert exit_info.value.code == 0
    assert "--stages {all,finetune}" in capsys.readouterr().out


def test_overrides_reach_the_fine_tuning_and_stray_words_are_refused(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(demo, "run_demo", lambda **kw: calls.append(kw) or {})
    demo.main(["--stages", "finetune", "--trainer.max_steps=3"])
    assert calls[0]["stages"] == "finetune" and calls[0]["extra_args"] == ["--trainer.max_steps=3"]
    with pytest.raises(SystemExit):
        demo.main(["finetune"])
    assert "unexpected arguments ['finetune']" in capsys.readouterr().err
