"""host_tools.keyfile: the one writer and reader of Ed25519 private-key files
(the release key, the centre key)."""
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from host_tools.keyfile import KeyFileError, create_private_key, read_private_key


def _raw(key):
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def test_create_then_read_round_trips_0600_and_never_overwrites(tmp_path):
    path = tmp_path / "sub" / "k.key"
    key = create_private_key(path, make_folder=True)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(path.parent).st_mode & 0o777 == 0o700
    assert _raw(read_private_key(path, "the test key")) == _raw(key)
    with pytest.raises(FileExistsError):
        create_private_key(path)
    assert _raw(read_private_key(path, "the test key")) == _raw(key)  # untouched


def test_refusals_name_the_file_never_the_key(tmp_path):
    path = tmp_path / "k.key"
    key = create_private_key(path)
    pem = path.read_bytes()
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="the test key .* can be read by others") as info:
        read_private_key(path, "the test key")
    assert info.value.exposed
    messages = [str(info.value)]
    for name, content, why in [("x.key", X25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
            "not an Ed25519 key"), ("junk.key", pem[:60], "unencrypted PEM")]:
        p = tmp_path / name
        p.write_bytes(content)
        os.chmod(p, 0o600)
        with pytest.raises(KeyFileError, match=why) as info:
            read_private_key(p, "the test key")
        assert not info.value.exposed
        messages.append(str(info.value))
    with pytest.raises(KeyFileError, match="no such key here"):
        read_private_key(tmp_path / "none.key", "the test key", missing="no such key here")
    with pytest.raises(KeyFileError, match="not a regular file"):
        read_private_key(tmp_path, "the test key")
    secret = _raw(key)
    for m in messages:
        assert secret.hex() not in m and "PRIVATE KEY" not in m
