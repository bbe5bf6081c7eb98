"""The public API is what postroom/__init__.py exports, and nothing slips in or out."""

import postroom


def test_public_api_is_pinned() -> None:
    assert postroom.__all__ == [
        "AddressError",
        "Attachment",
        "BroadcastError",
        "BroadcastReport",
        "ConfigError",
        "DirectoryError",
        "EmitResult",
        "EventError",
        "HeaderError",
        "MessageError",
        "MessageTooLargeError",
        "Postroom",
        "PostroomError",
        "TransportError",
        "User",
        "UserImportError",
    ]
    assert postroom.__all__ == sorted(postroom.__all__)
    for name in postroom.__all__:
        assert getattr(postroom, name).__module__.startswith("postroom.")
