"""Profiles: shape errors with file and field path, options checked per component, secrets, discovery."""

from pathlib import Path

import pytest

from imagerag_sdk.errors import ConfigError, MissingDependencyError, ProfileError
from imagerag_sdk.pipeline import ImageRAG
from imagerag_sdk.plugins import get_registry
from imagerag_sdk.profiles import check, find_profile, list_profiles, load_profile


def write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_plugins_ship_their_profiles(monkeypatch):
    entries = {e.name: e for e in list_profiles()}
    assert {"fake", "omnigen-gpt", "sdxl-gpt", "flux-gpt", "sdxl-qwen"} <= set(entries)
    assert (entries["fake"].plugin, entries["fake"].distribution) == ("testing", "imagerag-sdk")
    assert entries["sdxl-gpt"].plugin == "diffusers" and entries["sdxl-gpt"].where == \
        "plugin 'diffusers' (imagerag-diffusers)"
    for entry in entries.values():
        load_profile(entry.name)  # the shape is valid
    monkeypatch.setenv("IMAGERAG_LOAD_PLUGINS", "")  # no plugin: no plugin's profiles
    get_registry(refresh=True)
    assert list_profiles() == []
    with pytest.raises(ProfileError, match="no profile named 'fake' — available: none"):
        load_profile("fake")


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "name: x\ngenerator: {use: fake\n")
    with pytest.raises(ProfileError, match=r"p.yaml: line \d+, column \d+ is not valid YAML"):
        load_profile(path)


def test_unknown_key_and_wrong_type_name_the_field(tmp_path):
    path = write(tmp_path, "name: x\ngenerator: {use: fake}\ncritic: {use: fake}\nloop: {max_rounds: two, colour: red}\n")
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    problems = err.value.problems
    assert any("p.yaml: loop.max_rounds:" in p and "integer" in p for p in problems)
    assert any("loop.colour: unknown key" in p for p in problems)


def test_missing_section(tmp_path):
    with pytest.raises(ProfileError, match="generator: required field is missing"):
        load_profile(write(tmp_path, "name: x\ncritic: {use: fake}\n"))


def test_component_options_are_checked_against_the_component(tmp_path):
    profile = load_profile(write(tmp_path, "name: x\ngenerator: {use: fake, sise: 3}\ncritic: {use: fakee}\n"))
    problems = check(profile)
    assert any("generator.sise: unknown key" in p for p in problems)
    assert any("critic.use: no critic named 'fakee'" in p and "did you mean 'fake'" in p for p in problems)
    with pytest.raises(ProfileError, match="generator.sise: unknown key"):
        ImageRAG.from_profile(profile)


def test_components_are_named_never_imported(tmp_path):
    profile = load_profile(write(tmp_path, "name: x\ngenerator: {use: 'os.system'}\ncritic: {use: fake}\n"))
    assert any("no generator named 'os.system'" in p for p in check(profile))


def test_requires_says_what_to_install(tmp_path):
    path = write(tmp_path, "name: x\nrequires: [imagerag-not-a-plugin]\ngenerator: {use: fake}\ncritic: {use: fake}\n")
    assert "not installed" in check(load_profile(path))[0]
    with pytest.raises(MissingDependencyError, match="pip install imagerag-not-a-plugin"):
        ImageRAG.from_profile(path)


def test_env_secret_missing_is_an_actionable_error(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    path = write(tmp_path, "name: x\ngenerator: {use: fake}\ncritic: {use: scripted, answers: [{$env: NOT_SET_KEY}]}\n")
    with pytest.raises(ConfigError, match=r"critic\.answers\[0\] reads the environment variable NOT_SET_KEY"):
        ImageRAG.from_profile(path)
    monkeypatch.setenv("NOT_SET_KEY", "Yes")
    pipe = ImageRAG.from_profile(path)
    assert pipe.critic.options.answers == ["Yes"]


def test_discovery_order_explicit_user_builtin(tmp_path, monkeypatch):
    user_dir = tmp_path / "profiles"
    user_dir.mkdir()
    monkeypatch.setenv("IMAGERAG_PROFILES_DIR", str(user_dir))
    write(user_dir, "name: fake\ndescription: mine\ngenerator: {use: fake}\ncritic: {use: fake}\n", "fake.yaml")
    assert load_profile("fake").description == "mine"
    import imagerag_diffusers

    assert find_profile("sdxl-gpt").is_relative_to(Path(imagerag_diffusers.__file__).parent)
    assert {e.name: e.origin for e in list_profiles()}["fake"] == "user"
    explicit = write(tmp_path, "name: other\ngenerator: {use: fake}\ncritic: {use: fake}\n", "other.yaml")
    assert load_profile(str(explicit)).name == "other"
    with pytest.raises(ProfileError, match="no profile named 'nope'.*available: fake"):
        load_profile("nope")


def test_loop_overrides_are_validated():
    assert ImageRAG.from_profile("fake", max_rounds=2).loop.max_rounds == 2
    with pytest.raises(ProfileError, match="loop.max_rounds"):
        ImageRAG.from_profile("fake", max_rounds=0)


def test_shipped_profiles_options_match_their_components():
    """With their plugins installed, every shipped profile passes the components' own validation."""
    from imagerag_sdk.profiles import missing_distributions

    checked = 0
    for entry in list_profiles():
        profile = load_profile(entry.name)
        if missing_distributions(profile):
            continue
        assert check(profile) == [], entry.name
        checked += 1
    assert checked >= 1


def test_a_profile_without_critic_is_invalid_for_validate_too(tmp_path):
    """build_pipeline always refused it; validate now says so instead of 'ok'."""
    profile = load_profile(write(tmp_path, "name: x\ngenerator: {use: fake, sise: 3}\n"))
    problems = check(profile)
    assert any("critic: the loop needs a critic" in p for p in problems)
    with pytest.raises(ProfileError) as err:
        ImageRAG.from_profile(profile)
    assert err.value.problems == problems and len(problems) == 2


def test_the_critics_former_mode_option_says_it_is_now_protocol(tmp_path):
    """``critic.mode`` (before the rename to ``protocol``) is refused with the new name, in the
    critic and in a critic nested in another component; other unknown keys stay 'unknown key'."""
    profile = load_profile(write(tmp_path, "name: x\ngenerator: {use: fake}\ncritic: {use: fake, mode: paper}\n"
                                           "reranker: {use: vlm, critic: {use: fake, mode: fused, moed: 1}}\n"))
    problems = check(profile)
    renamed = ("unknown option; the critic's protocol option is now 'protocol' "
               "(auto | fused | three_step | paper)")
    assert f"p.yaml: critic.mode: {renamed} (got 'paper')" in problems[0]
    assert any(f"reranker.critic.mode: {renamed} (got 'fused')" in p for p in problems)
    assert any("reranker.critic.moed: unknown key (got 1)" in p for p in problems)
    with pytest.raises(ProfileError, match=r"critic\.mode: unknown option; the critic's protocol option is now 'protocol'"):
        ImageRAG.from_profile(profile)
    assert check(load_profile(write(tmp_path, "name: x\ngenerator: {use: fake}\ncritic: {use: fake, protocol: paper}\n",
                                    "new.yaml"))) == []
