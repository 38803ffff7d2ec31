"""current_settings: built once per environment (hot paths), never stale when the environment changes."""
from shared.config import CommonSettings, current_settings
from shared.personal_data import identity_hasher


def test_same_environment_same_object_changed_environment_new_one(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JZ_TOPIC_PARTITIONS", "3")
    first = current_settings()
    assert isinstance(first, CommonSettings) and first.topic_partitions == 3
    assert current_settings() is first
    monkeypatch.setenv("JZ_TOPIC_PARTITIONS", "4")
    assert current_settings().topic_partitions == 4
    assert current_settings("registry").topic_partitions == 4  # service settings fall back to the common value
    monkeypatch.setenv("JZ_REGISTRY_TOPIC_PARTITIONS", "5")
    assert current_settings("registry").topic_partitions == 5


def test_identity_hasher_follows_the_identity_key(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JZ_IDENTITY_KEY", "key-one")
    one = identity_hasher()("360782197803150018")
    assert identity_hasher()("360782197803150018") == one
    monkeypatch.setenv("JZ_IDENTITY_KEY", "key-two")
    assert identity_hasher()("360782197803150018") != one
