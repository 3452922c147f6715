"""facteur-map(1): build and query hash/btree tables, aliases, errors with
file:line, and table compatibility with Debian's Postfix postmap.

Self-contained: every test works in pytest's tmp_path and runs the binary
found through $FACTEUR_BIN (default ./bin).  No daemon is started.
"""
import os
import shutil
import stat
import subprocess

import pytest

BIN = os.environ.get("FACTEUR_BIN", "./bin")
POSTMAP = "/usr/sbin/postmap"


def facteur_map(*args, stdin=None):
    exe = os.path.join(BIN, "facteur-map")
    return subprocess.run([exe, *map(str, args)], input=stdin,
                          capture_output=True, text=True, timeout=30)


def write(path, text, mode=0o644):
    path.write_text(text)
    path.chmod(mode)
    return path


VIRTUAL = """\
# virtual alias table
Info@Example.COM      alice@example.com
sales@example.com     bob@example.com,
    carol@example.com
@example.org          catchall@example.com
"""


@pytest.fixture(autouse=True)
def have_binary():
    if not os.access(os.path.join(BIN, "facteur-map"), os.X_OK):
        pytest.fail("facteur-map not built in %s (set FACTEUR_BIN)" % BIN)


@pytest.mark.parametrize("kind", ["hash", "btree"])
def test_build_and_query(tmp_path, kind):
    src = write(tmp_path / "virtual", VIRTUAL)
    r = facteur_map("%s:%s" % (kind, src))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "virtual.db").is_file()
    assert not (tmp_path / "virtual.db.tmp").exists()

    r = facteur_map("-q", "info@example.com", "%s:%s" % (kind, src))
    assert (r.returncode, r.stdout) == (0, "alice@example.com\n")
    # Keys were lowercased at build time and the query key is folded too.
    r = facteur_map("-q", "INFO@EXAMPLE.COM", "%s:%s" % (kind, src))
    assert (r.returncode, r.stdout) == (0, "alice@example.com\n")
    r = facteur_map("-q", "sales@example.com", "%s:%s" % (kind, src))
    assert r.stdout == "bob@example.com,    carol@example.com\n"

    r = facteur_map("-s", "%s:%s" % (kind, src))
    assert r.returncode == 0
    lines = sorted(r.stdout.splitlines())
    assert lines == sorted([
        "info@example.com\talice@example.com",
        "sales@example.com\tbob@example.com,    carol@example.com",
        "@example.org\tcatchall@example.com",
    ])
    if kind == "btree":
        assert r.stdout.splitlines() == sorted(r.stdout.splitlines())


def test_default_type_is_hash(tmp_path):
    src = write(tmp_path / "t", "k v\n")
    assert facteur_map(src).returncode == 0
    r = facteur_map("-q", "k", "hash:%s" % src)
    assert r.stdout == "v\n"


def test_missing_key_exit_1(tmp_path):
    src = write(tmp_path / "virtual", VIRTUAL)
    assert facteur_map("hash:%s" % src).returncode == 0
    r = facteur_map("-q", "nobody@example.com", "hash:%s" % src)
    assert (r.returncode, r.stdout) == (1, "")


def test_query_stdin(tmp_path):
    src = write(tmp_path / "virtual", VIRTUAL)
    assert facteur_map("hash:%s" % src).returncode == 0
    r = facteur_map("-q", "-", "hash:%s" % src,
                    stdin="nobody@x\ninfo@example.com\n@example.org\n")
    assert r.returncode == 0
    assert r.stdout == ("info@example.com\talice@example.com\n"
                        "@example.org\tcatchall@example.com\n")
    r = facteur_map("-q", "-", "hash:%s" % src, stdin="nobody@x\n")
    assert (r.returncode, r.stdout) == (1, "")


def test_first_table_wins(tmp_path):
    a = write(tmp_path / "a", "k from-a\n")
    b = write(tmp_path / "b", "k from-b\nonly-b yes\n")
    assert facteur_map("hash:%s" % a, "btree:%s" % b).returncode == 0
    r = facteur_map("-q", "k", "hash:%s" % a, "btree:%s" % b)
    assert r.stdout == "from-a\n"
    r = facteur_map("-q", "only-b", "hash:%s" % a, "btree:%s" % b)
    assert r.stdout == "yes\n"


def test_no_fold(tmp_path):
    src = write(tmp_path / "t", "MixedCase value\n")
    assert facteur_map("-f", "hash:%s" % src).returncode == 0
    assert facteur_map("-f", "-q", "MixedCase", "hash:%s" % src).stdout \
        == "value\n"
    assert facteur_map("-f", "-q", "mixedcase", "hash:%s" % src).returncode \
        == 1


def test_aliases(tmp_path):
    src = write(tmp_path / "aliases", """\
# /etc/aliases
MAILER-DAEMON: postmaster
postmaster: root
"John Doe": jdoe,
\tjdoe@elsewhere.example
staff: alice, bob
""")
    r = facteur_map("-a", "hash:%s" % src)
    assert r.returncode == 0, r.stderr
    q = lambda key: facteur_map("-q", key, "hash:%s" % src).stdout
    assert q("mailer-daemon") == "postmaster\n"
    assert q("john doe") == "jdoe,\tjdoe@elsewhere.example\n"
    assert q("staff") == "alice, bob\n"


def test_aliases_error_names_line(tmp_path):
    src = write(tmp_path / "aliases", "postmaster: root\nbroken alias\n")
    r = facteur_map("-a", "hash:%s" % src)
    assert r.returncode == 1
    assert "%s:2: missing ':'" % src in r.stderr
    assert not (tmp_path / "aliases.db").exists()
    assert not (tmp_path / "aliases.db.tmp").exists()


def test_bad_input_names_line(tmp_path):
    src = write(tmp_path / "virtual", "good value\n\n# c\nlonely\n")
    r = facteur_map("hash:%s" % src)
    assert r.returncode == 1
    assert "%s:4: expected format: key whitespace value" % src in r.stderr
    assert not (tmp_path / "virtual.db").exists()


def test_failed_build_keeps_old_table(tmp_path):
    src = write(tmp_path / "virtual", "k old\n")
    assert facteur_map("hash:%s" % src).returncode == 0
    write(tmp_path / "virtual", "k new\n  \n lonely-continuation\nbad\n")
    assert facteur_map("hash:%s" % src).returncode == 1
    assert facteur_map("-q", "k", "hash:%s" % src).stdout == "old\n"


def test_regexp_check_names_line(tmp_path):
    good = write(tmp_path / "checks", "/^Subject: spam/ REJECT\n")
    assert facteur_map("regexp:%s" % good).returncode == 0
    r = facteur_map("-q", "Subject: SPAM now", "regexp:%s" % good)
    assert r.stdout == "REJECT\n"
    bad = write(tmp_path / "bad", "/ok/ 1\n# c\n/(unclosed/ 2\n")
    r = facteur_map("regexp:%s" % bad)
    assert r.returncode == 1
    assert "%s:3: bad regular expression" % bad in r.stderr


def test_mode_follows_source(tmp_path):
    src = write(tmp_path / "secrets", "relay user:pass\n", mode=0o600)
    assert facteur_map("hash:%s" % src).returncode == 0
    mode = stat.S_IMODE(os.stat(tmp_path / "secrets.db").st_mode)
    assert mode == 0o600


def test_dump_unsupported_type(tmp_path):
    r = facteur_map("-s", "static:x")
    assert r.returncode == 1
    assert "cannot list" in r.stderr


def test_usage(tmp_path):
    assert facteur_map().returncode == 1
    assert facteur_map("-q", "k", "-s", "x").returncode == 1


def postmap(tmp_path, *args):
    """Run Debian's postmap with a throw-away config directory."""
    conf = tmp_path / "postfix-conf"
    conf.mkdir(exist_ok=True)
    (conf / "main.cf").write_text("")
    return subprocess.run([POSTMAP, "-c", str(conf), *map(str, args)],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(not shutil.which(POSTMAP), reason="postfix not installed")
@pytest.mark.parametrize("kind", ["hash", "btree"])
def test_postfix_reads_our_tables(tmp_path, kind):
    src = write(tmp_path / "virtual", VIRTUAL)
    assert facteur_map("%s:%s" % (kind, src)).returncode == 0
    r = postmap(tmp_path, "-q", "info@example.com", "%s:%s" % (kind, src))
    assert (r.returncode, r.stdout) == (0, "alice@example.com\n"), r.stderr
    r = postmap(tmp_path, "-q", "@example.org", "%s:%s" % (kind, src))
    assert r.stdout == "catchall@example.com\n"
    r = postmap(tmp_path, "-q", "nobody@example.com", "%s:%s" % (kind, src))
    assert r.returncode == 1


@pytest.mark.skipif(not shutil.which(POSTMAP), reason="postfix not installed")
def test_we_read_postfix_tables(tmp_path):
    src = write(tmp_path / "virtual", VIRTUAL)
    r = postmap(tmp_path, "hash:%s" % src)
    assert r.returncode == 0, r.stderr
    r = facteur_map("-q", "sales@example.com", "hash:%s" % src)
    assert (r.returncode, r.stdout) == \
        (0, "bob@example.com,    carol@example.com\n")
    r = facteur_map("-s", "hash:%s" % src)
    assert "info@example.com\talice@example.com" in r.stdout.splitlines()


def test_newaliases_link(tmp_path):
    """Invoked as newaliases, facteur-map builds main.cf's alias_database."""
    link = tmp_path / "newaliases"
    link.symlink_to(os.path.abspath(os.path.join(BIN, "facteur-map")))
    conf = tmp_path / "conf"
    conf.mkdir()
    aliases = write(tmp_path / "aliases", "Postmaster: root\nstaff: a, b\n")
    other = write(tmp_path / "more", "list: x\n")
    (conf / "main.cf").write_text(
        "alias_database = hash:%s, btree:%s\n" % (aliases, other))
    env = dict(os.environ, FACTEUR_CONFIG_DIR=str(conf))
    r = subprocess.run([str(link)], env=env, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert facteur_map("-q", "postmaster", "hash:%s" % aliases).stdout \
        == "root\n"
    assert facteur_map("-q", "list", "btree:%s" % other).stdout == "x\n"

    write(aliases, "Postmaster: root\nno colon here\n")
    r = subprocess.run([str(link)], env=env, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1
    assert "newaliases: fatal: %s:2:" % aliases in r.stderr
