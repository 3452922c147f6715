"""test_smtp_client_relay.py - relayhost with SASL against facteur's own
smtpd + authd (a real peer that requires AUTH to relay).

Instance "relay" runs smtpd with STARTTLS and AUTH through authd
(start_smtpd from test_smtpd_common.py: relaying is permitted only after
authentication).  Instance "client" runs the smtp agent with
relayhost-style next hop [127.0.0.1]:port, smtp_tls_security_level =
encrypt and the password in smtp_sasl_password_maps; the message must
land in the relay's incoming/ queue for a remote domain.
"""

from smtp_client_fixture import reply_statuses
from test_smtp_client import deliver, start_agent
from test_smtpd_common import PASSWORD, USER, queue_messages, start_smtpd, wait_messages


def client_params(port, password):
    return {"smtp_tls_security_level": "encrypt",
            "smtp_sasl_auth_enable": "yes",
            "smtp_sasl_password_maps": "inline:{ [127.0.0.1]:%d=%s:%s }" % (port, USER, password),
            "smtp_sasl_tls_security_options": "noanonymous"}


def test_relayhost_sasl_through_facteur_smtpd(make_instance):
    relay = make_instance("relay")
    ports = start_smtpd(relay, tls=True, auth=True)
    client = start_agent(make_instance, None, client_params(ports["smtp"], PASSWORD))
    qid, reply = deliver(client, "[127.0.0.1]:%d" % ports["smtp"], ["far@remote.example"])
    st, dsn, text = reply_statuses(reply)[0]
    assert st == 0 and text.startswith("250"), (reply, client.log_text()[-2000:])
    client.wait_for_log(r"(Untrusted|Trusted|Anonymous) TLS connection established to "
                        r"127\.0\.0\.1\[127\.0\.0\.1\]:%d" % ports["smtp"])
    client.wait_for_log(r"%s: SASL authentication to 127\.0\.0\.1\[127\.0\.0\.1\] as %s "
                        r"succeeded" % (qid, USER.replace(".", r"\.")))
    msgs = wait_messages(relay, 1)
    assert [r[2] for r in msgs[0].rcpts] == ["far@remote.example"]
    assert b"facteur smtp test" in msgs[0].content
    assert PASSWORD not in client.log_text()


def test_relayhost_without_valid_credentials_is_not_relayed(make_instance):
    relay = make_instance("relay")
    ports = start_smtpd(relay, tls=True, auth=True)
    client = start_agent(make_instance, None, client_params(ports["smtp"], "not-the-password"))
    _, reply = deliver(client, "[127.0.0.1]:%d" % ports["smtp"], ["far@remote.example"])
    st, dsn, text = reply_statuses(reply)[0]
    assert st == 4 and "SASL authentication failed" in text, reply
    assert queue_messages(relay) == []
