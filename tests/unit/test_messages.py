"""The student-facing templates: what each channel says, the file's checks, and the fallback."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.model.score import DayFacts
from schemas.errors import ConfigError
from schemas.nudges import Channel, Explanation, Nudge, Tier
from schemas.rules import Kind, Rule
from sinks.messages import (
    DEFAULT_MESSAGES,
    KIND_METRICS,
    SMS_MAX_CHARS,
    MessagesFileError,
    MessageTemplates,
    format_day,
    load_messages,
)
from tests.unit.build import DEFAULTS, PSEUDONYM, days, only, run, student

MESSAGES = load_messages(None, DEFAULTS)
PROMPT_RULES = [rule for rule in DEFAULTS.rules if rule.tier is Tier.PROMPT]
LINKS = (
    "https://example.ac.uk/student-support",
    "https://example.ac.uk/my-engagement",
    "https://example.ac.uk/my-engagement/preferences",
)

MONDAY = date(2026, 11, 2).toordinal()
FULL = {"present": 1, "swipes": 2, "vle": 12}


# -- realistic nudges, made by the rules themselves ------------------------------------------


def vle_nudge() -> Nudge:
    """Online until Friday 6 Nov, then nothing: prompted after 7 quiet days."""
    who = student(days(MONDAY - 14, MONDAY + 4, vle=3), MONDAY - 14)
    (nudge,) = run(only("no_vle_activity_7d"), who, MONDAY - 14, MONDAY + 14)
    return nudge


def attendance_nudge() -> Nudge:
    """Three sessions attended, then four missed: 3 of 7, below half."""
    weekdays = [d for d in range(MONDAY, MONDAY + 14) if date.fromordinal(d).weekday() < 5]
    facts: dict[int, DayFacts] = {}
    for n, day in enumerate(weekdays[:7]):
        facts |= days(day, day, present=1) if n < 3 else days(day, day, absent=1)
    # In the second week of term (it started on Monday 26 October): the 14 days are covered.
    who = student(facts, MONDAY, term_start=MONDAY - 7)
    (nudge,) = run(only("attendance_below_50pct_14d"), who, MONDAY, MONDAY + 13)
    return nudge


def score_drop_nudge() -> Nudge:
    """Five weeks of full engagement, then a quiet week: well below the student's own average."""
    who = student(days(MONDAY - 35, MONDAY - 1, **FULL), MONDAY - 35)
    (nudge,) = run(only("score_drop_2pt_28d"), who, MONDAY - 35, MONDAY + 6)
    return nudge


BUILDERS: dict[Kind, Callable[[], Nudge]] = {
    Kind.INACTIVITY: vle_nudge,
    Kind.ATTENDANCE_RATE: attendance_nudge,
    Kind.SCORE_DROP: score_drop_nudge,
}
NUDGES = {nudge.rule_id: nudge for nudge in (build() for build in BUILDERS.values())}


def prompt_cases() -> list[tuple[Nudge, Channel]]:
    return [(NUDGES[rule.id], channel) for rule in PROMPT_RULES for channel in Channel]


def text_of(nudge: Nudge, channel: Channel, templates: MessageTemplates = MESSAGES) -> str:
    message = templates.render(nudge, channel)
    return f"{message.subject or ''}\n{message.body}"


def test_every_prompt_rule_has_a_realistic_nudge_and_an_sms_line() -> None:
    assert {rule.kind for rule in PROMPT_RULES} <= set(BUILDERS), "add a builder for the kind"
    assert {rule.id for rule in PROMPT_RULES} == set(NUDGES)
    for rule in PROMPT_RULES:
        assert (rule.id, Channel.SMS) in MESSAGES.overrides


def test_kind_metrics_name_what_the_rules_really_produce() -> None:
    assert set(KIND_METRICS) == set(Kind)
    for rule in PROMPT_RULES:
        assert set(NUDGES[rule.id].explanation.metrics) == KIND_METRICS[rule.kind]


# -- what every message says -----------------------------------------------------------------


@pytest.mark.parametrize(("nudge", "channel"), prompt_cases())
def test_every_message_links_to_help_data_and_opting_out(nudge: Nudge, channel: Channel) -> None:
    message = MESSAGES.render(nudge, channel)
    assert message.channel is channel
    for link in LINKS:
        assert link in message.body
    assert "{" not in message.body
    assert "}" not in message.body
    assert PSEUDONYM not in message.body


@pytest.mark.parametrize("channel", [Channel.EMAIL, Channel.APP])
@pytest.mark.parametrize("nudge", NUDGES.values(), ids=NUDGES.keys())
def test_email_and_app_carry_the_whole_explanation_under_a_subject(
    nudge: Nudge, channel: Channel
) -> None:
    message = MESSAGES.render(nudge, channel)
    assert nudge.explanation.summary in message.body
    assert message.subject
    assert "\n" not in message.subject
    assert REASSURANCE in message.body


@pytest.mark.parametrize("nudge", NUDGES.values(), ids=NUDGES.keys())
def test_an_sms_fits_two_segments_says_what_was_noticed_and_has_no_subject(nudge: Nudge) -> None:
    message = MESSAGES.render(nudge, Channel.SMS)
    assert message.subject is None
    assert len(message.body) <= SMS_MAX_CHARS
    # The numbers, from the rule's own line rather than the whole summary.
    metrics = nudge.explanation.metrics
    shown = {
        "no_vle_activity_7d": [f"for {metrics.get('days_without_activity')} days"],
        "attendance_below_50pct_14d": [
            f"attended {metrics.get('sessions_attended')} of {metrics.get('sessions_expected')}"
        ],
        "score_drop_2pt_28d": [f"{nudge.explanation.score:g}", f"{metrics.get('baseline_score')}"],
    }[nudge.rule_id]
    for words in shown:
        assert words in message.body


def test_windows_are_written_like_3_nov() -> None:
    assert format_day(date(2026, 11, 3)) == "3 Nov"
    assert format_day(date(2027, 1, 21)) == "21 Jan"
    message = MESSAGES.render(NUDGES["attendance_below_50pct_14d"], Channel.SMS)
    start = NUDGES["attendance_below_50pct_14d"].explanation.window_start
    assert f"from {format_day(start)} to " in message.body


# -- tone ------------------------------------------------------------------------------------

# The one sentence that may mention assessment: it says these messages are no part of it. The
# check removes it exactly once and then allows no word below at all, so a second mention of
# assessment, or the reassurance grown into "... and your marks", fails.
REASSURANCE = "It is not part of any assessment."
BANNED = re.compile(
    r"\b("
    r"blam\w*|fault\w*|threat\w*|warn\w*|penal\w*|sanction\w*|disciplin\w*|misconduct|"
    r"punish\w*|consequence\w*|assess\w*|grad(e|es|ed|ing)|marks?|marked|exams?|examin\w*|fail\w*|"
    r"expel\w*|expulsion|suspen(d|ded|sion)|withdraw\w*|terminat\w*|compliance|visa|"
    r"investigat\w*|unacceptable|must|lazy|poor"
    r")\b",
    re.IGNORECASE,
)


def banned_words(text: str) -> list[str]:
    assert text.count(REASSURANCE) <= 1
    return [m.group(0) for m in BANNED.finditer(text.replace(REASSURANCE, " "))]


def test_the_banned_word_check_catches_what_it_is_for() -> None:
    assert banned_words("A final WARNING: missing exams may affect your Grades.") == [
        "WARNING",
        "exams",
        "Grades",
    ]
    assert banned_words("For example, an examination.") == ["examination"]
    assert banned_words(f"{REASSURANCE} Your assessment is safe.") == ["assessment"]
    assert banned_words(REASSURANCE) == []


@pytest.mark.parametrize(("nudge", "channel"), prompt_cases())
def test_no_message_blames_threatens_or_mentions_marks(nudge: Nudge, channel: Channel) -> None:
    assert banned_words(text_of(nudge, channel)) == []


def test_no_template_in_the_shipped_file_uses_a_banned_word() -> None:
    # Covers wording no realistic nudge reaches (the sms default, every override).
    templates = [*MESSAGES.defaults.values(), *MESSAGES.overrides.values()]
    for template in templates:
        assert banned_words(f"{template.subject or ''}\n{template.body}") == []


# -- overrides, fallback, determinism --------------------------------------------------------


def test_a_rule_override_replaces_only_what_it_names() -> None:
    nudge = NUDGES["attendance_below_50pct_14d"]
    ours = MESSAGES.render(nudge, Channel.EMAIL)
    generic = MESSAGES.render(NUDGES["no_vle_activity_7d"], Channel.EMAIL)
    assert ours.subject == "Checking in about your timetabled sessions"
    assert generic.subject == "Checking in about your studies"
    assert ours.body.replace(nudge.explanation.summary, "") == generic.body.replace(
        NUDGES["no_vle_activity_7d"].explanation.summary, ""
    )


def test_a_missing_metric_falls_back_to_the_channel_default_and_says_so() -> None:
    nudge = NUDGES["attendance_below_50pct_14d"]
    metrics = {"sessions_expected": 7, "attendance_rate": 0.4286}
    lacking = nudge.model_copy(
        update={"explanation": nudge.explanation.model_copy(update={"metrics": metrics})}
    )
    rendering = MESSAGES.render_checked(lacking, Channel.SMS)
    assert rendering.fallback is not None
    assert "[rules.attendance_below_50pct_14d.sms]" in rendering.fallback
    assert "sessions_attended" in rendering.fallback
    assert rendering.message.body.startswith("Example University: we noticed a change")
    # The e-mail override needs no metric, so it still applies.
    email = MESSAGES.render_checked(lacking, Channel.EMAIL)
    assert (email.fallback, email.message.subject) == (
        None,
        "Checking in about your timetabled sessions",
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 10**13])
def test_a_metric_that_is_not_a_plausible_number_is_treated_as_missing(bad: float) -> None:
    nudge = NUDGES["no_vle_activity_7d"]
    odd = nudge.model_copy(
        update={
            "explanation": nudge.explanation.model_copy(
                update={"metrics": {"days_without_activity": bad}}
            )
        }
    )
    rendering = MESSAGES.render_checked(odd, Channel.SMS)
    assert rendering.fallback is not None
    assert "nan" not in rendering.message.body
    assert "inf" not in rendering.message.body


def test_an_sms_override_that_comes_out_too_long_gives_way_to_the_default(
    tmp_path: Path,
) -> None:
    path = edited(
        tmp_path,
        ("/student-support", "/student-support/get-in-touch-with-us-today"),
    )
    templates = load_messages(path, DEFAULTS)
    nudge = NUDGES["no_vle_activity_7d"]
    long = nudge.model_copy(
        update={
            "explanation": nudge.explanation.model_copy(
                update={"metrics": {"days_without_activity": 999_999_999_999}}
            )
        }
    )
    rendering = templates.render_checked(long, Channel.SMS)
    assert rendering.fallback is not None
    assert "characters" in rendering.fallback
    assert len(rendering.message.body) <= SMS_MAX_CHARS
    assert templates.render_checked(nudge, Channel.SMS).fallback is None


def test_rendering_is_deterministic_across_loads() -> None:
    again = load_messages(None, DEFAULTS)
    for nudge, channel in prompt_cases():
        assert MESSAGES.render(nudge, channel) == again.render(nudge, channel)
        assert MESSAGES.render(nudge, channel) == MESSAGES.render(nudge, channel)


def test_only_prompts_are_rendered_for_a_student() -> None:
    nudge = NUDGES["no_vle_activity_7d"].model_copy(update={"tier": Tier.INVITATION})
    with pytest.raises(ValueError, match="only prompts reach a student"):
        MESSAGES.render(nudge, Channel.EMAIL)


def test_example_institution_values_are_reported(tmp_path: Path) -> None:
    assert MESSAGES.example_fields == ("name", "help_url", "data_url", "preferences_url")
    text = DEFAULT_MESSAGES.read_text(encoding="utf-8")
    text = text.replace("Example University", "University of Gloucestershire")
    path = tmp_path / "messages.toml"
    path.write_text(text.replace("https://example.ac.uk", "https://www.glos.ac.uk"), "utf-8")
    assert load_messages(path, DEFAULTS).example_fields == ()


# -- the file's checks -----------------------------------------------------------------------


def edited(tmp_path: Path, *changes: tuple[str, str]) -> Path:
    """The shipped file with each (old, new) replaced once; ``old`` must be present."""
    text = DEFAULT_MESSAGES.read_text(encoding="utf-8")
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "messages.toml"
    path.write_text(text, encoding="utf-8")
    return path


VISA_OVERRIDE = '[rules.visa_no_contact_21d.email]\nsubject = "Hi"\n\n'
END_OF_VLE_SMS = '\\\n"""\n\n[rules.attendance_below_50pct_14d.sms]'
BAD_FILES: dict[str, tuple[list[tuple[str, str]], list[str]]] = {
    "unknown placeholder": (
        [('subject = "Checking in about your studies"', 'subject = "Hi {first_name}"')],
        ["[channels.email] subject", "unknown placeholder {first_name}", "{summary}"],
    ),
    "missing channel": (
        [("[channels.app]", "[channels.push]")],
        ["[channels.app]: missing", "[channels.push]: no such channel"],
    ),
    "override for an unknown rule": (
        [("[rules.score_drop_2pt_28d.sms]", "[rules.score_drop_3pt_28d.sms]")],
        ["[rules.score_drop_3pt_28d]: no rule with that id", "no_vle_activity_7d", "remove"],
    ),
    "override for a rule that never messages a student": (
        [("[rules.score_drop_2pt_28d.sms]", VISA_OVERRIDE + "[rules.score_drop_2pt_28d.sms]")],
        ["[rules.visa_no_contact_21d]: visa_no_contact_21d is a referral", "prompt rules"],
    ),
    "override for a channel that does not exist": (
        [("[rules.attendance_below_50pct_14d.email]", "[rules.attendance_below_50pct_14d.letter]")],
        ["[rules.attendance_below_50pct_14d.letter]: no such channel", "email, sms, app"],
    ),
    "default without the preferences link": (
        [("Turn these messages off: {preferences_url}\n", "")],
        ["[channels.app] body: missing {preferences_url}", "how to stop these messages"],
    ),
    "override without the preferences link": (
        [(" Stop these texts: {preferences_url}" + END_OF_VLE_SMS, END_OF_VLE_SMS)],
        ["[rules.no_vle_activity_7d.sms] body: missing {preferences_url}"],
    ),
    "override without the help link": (
        [("help is here: \\\n{help_url} Your data", "help is on the way. Your data")],
        ["[rules.no_vle_activity_7d.sms] body: missing {help_url}", "where to get help"],
    ),
    "metric the rule does not produce": (
        [("{metric_days_without_activity}", "{metric_sessions_attended}")],
        [
            "[rules.no_vle_activity_7d.sms]",
            "{metric_sessions_attended} is not a metric this rule produces",
            "{metric_days_without_activity}",
        ],
    ),
    "metric in a channel default": (
        [('title = "Checking in about your studies"', 'title = "{metric_score_drop} points"')],
        ["[channels.app] title", "a channel default may not use metrics", "override"],
    ),
    "summary in an sms": (
        [("we noticed a change in your engagement", "{summary}")],
        ["[channels.sms] body", "{summary} does not fit in an SMS"],
    ),
    "sms too long": (
        [("/student-support", "/student-support/" + "x" * 60)],
        ["[channels.sms] body: can reach", "the limit is 320", "shorten it"],
    ),
    "sms outside the gsm alphabet": (
        [
            (
                "we noticed a change in your engagement",
                "we\u2019ve noticed a change in your engagement",
            )
        ],
        ["[channels.sms] body", "'\u2019'", "Unicode"],
    ),
    "format spec": (
        [("{window_start} to {window_end}.", "{window_start:>10} to {window_end}.")],
        ["[channels.sms] body", "has a format or conversion", "write {window_start}"],
    ),
    "broken braces": (
        [('subject = "Checking in about your studies"', 'subject = "Checking in {"')],
        ["[channels.email] subject: not a valid template", "{{ or }}"],
    ),
    "plain http link": (
        [("https://example.ac.uk/student-support", "http://example.ac.uk/student-support")],
        ["[institution] help_url", "not an https:// address"],
    ),
    "unknown institution key": (
        [('tutor_phrase = "your personal tutor"', 'tutor_phrase = "x"\nphone = "0"')],
        ["[institution] phone: unknown key"],
    ),
    "wrong schema version": (
        [("schema_version = 1", "schema_version = 2")],
        ["schema_version is 2", "reads version 1", "messages.default.toml"],
    ),
    "not toml": (
        [("[channels.email]", "[channels.email")],
        ["is not valid TOML"],
    ),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=BAD_FILES.keys())
def test_a_bad_file_is_refused_naming_the_file_the_table_and_the_fix(
    tmp_path: Path, case: str
) -> None:
    changes, expected = BAD_FILES[case]
    path = edited(tmp_path, *changes)
    with pytest.raises(MessagesFileError) as caught:
        load_messages(path, DEFAULTS)
    assert isinstance(caught.value, ConfigError)
    text = str(caught.value)
    assert str(path) in text
    for fragment in expected:
        assert fragment in text


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    path = edited(
        tmp_path,
        ('subject = "Checking in about your studies"', 'subject = "Hi {first_name}"'),
        ("[channels.app]", "[channels.push]"),
    )
    with pytest.raises(MessagesFileError) as caught:
        load_messages(path, DEFAULTS)
    assert str(caught.value).count("\n  - ") == 3


def test_a_missing_file_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(MessagesFileError, match=r"cannot read messages file .*nowhere\.toml"):
        load_messages(tmp_path / "nowhere.toml", DEFAULTS)


# -- property: any metric values render, completely ------------------------------------------

NUMBERS = st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True))


@given(
    data=st.data(),
    rule=st.sampled_from(PROMPT_RULES),
    channel=st.sampled_from(list(Channel)),
    score=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    band=st.one_of(st.none(), st.sampled_from(["very low", "low", "moderate"])),
    end=st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)),
)
def test_rendering_never_raises_nor_leaves_a_placeholder(
    data: st.DataObject,
    rule: Rule,
    channel: Channel,
    score: float | None,
    band: str | None,
    end: date,
) -> None:
    names = st.one_of(st.sampled_from(sorted(KIND_METRICS[rule.kind])), st.text(min_size=1))
    metrics = data.draw(st.dictionaries(names, NUMBERS, max_size=5))
    real = NUDGES[rule.id]
    nudge = Nudge(
        nudge_id="n_" + "0" * 32,
        pseudonym=PSEUDONYM,
        rule_id=rule.id,
        rule_version=rule.version,
        tier=Tier.PROMPT,
        channels=rule.channels,
        created_at=datetime.combine(end, datetime.min.time(), tzinfo=UTC),
        explanation=Explanation(
            summary=real.explanation.summary,
            metrics=metrics,
            threshold=real.explanation.threshold,
            window_start=end - timedelta(days=rule.window_days - 1),
            window_end=end,
            sources=rule.sources,
            score=score,
            band=band,
        ),
    )
    rendering = MESSAGES.render_checked(nudge, channel)
    message = rendering.message
    text = f"{message.subject or ''}{message.body}"
    assert "{" not in text
    assert "}" not in text
    assert not re.search(r"\b(nan|inf)\b", text, re.IGNORECASE)
    for link in LINKS:
        assert link in message.body
    if channel is Channel.SMS:
        assert len(message.body) <= SMS_MAX_CHARS
    assert MESSAGES.render_checked(nudge, channel) == rendering


# -- the examples in docs/messages.md are what the code renders ------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "messages.md"
EXAMPLE = re.compile(r"<!-- example: (\S+) (\S+) -->\n```text\n(.*?)\n```", re.DOTALL)


def test_the_documented_examples_are_what_a_student_receives() -> None:
    examples = EXAMPLE.findall(DOCS.read_text(encoding="utf-8"))
    assert {channel for _, channel, _ in examples} == {c.value for c in Channel}
    for rule_id, channel, shown in examples:
        message = MESSAGES.render(NUDGES[rule_id], Channel(channel))
        rendered = message.body
        if message.subject is not None:
            rendered = f"Subject: {message.subject}\n\n{message.body}"
        assert shown == rendered, f"docs/messages.md: update the {rule_id} {channel} example"
