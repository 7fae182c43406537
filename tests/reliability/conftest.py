"""The reliability suite: crashes, bad input, faulty servers, hostile content, access. Every test in this
folder carries the `reliability` marker (tests/conftest.py gives it by place; select with `pytest -m reliability`,
skip with `-m "not reliability"`); plain `pytest -q` (what `make test` runs) includes them. The loopback server's
fixtures (`openai_server`, `fake`) come from tests/fixtures/openai.py through tests/conftest.py."""
