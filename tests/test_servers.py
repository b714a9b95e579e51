"""The real-server fixtures work: Dovecot serves, idles, restarts and renumbers; the SMTP sink fails on cue."""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.servers.dovecot import (  # noqa: F401 - fixtures, found by pytest under their names
    Dovecot,
    fixture_dovecot_server,
    fixture_dovecot_tls_server,
    fixture_make_dovecot,
)
from tests.servers.smtp_sink import (  # noqa: F401 - fixtures, found by pytest under their names
    SmtpSink,
    Stage,
    fixture_make_smtp_sink,
    fixture_smtp_sink,
)


def raw_mail(subject: str = "Hello", message_id: str = "<one@example.org>") -> bytes:
    return (
        f"From: Ana <ana@example.org>\r\nTo: desk@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: {message_id}\r\n\r\nBody of {subject}.\r\n"
    ).encode()


def email_message(message_id: str = "<out-1@triage.test>") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "desk@triage.test"
    message["To"] = "ana@example.org"
    message["Subject"] = "Your request"
    message["Message-ID"] = message_id
    message.set_content("We are on it.\n")
    return message


# -- Dovecot ----------------------------------------------------------------------------------------


def test_append_then_fetch_returns_the_same_bytes(dovecot_server: Dovecot) -> None:
    """A mail appended to Dovecot comes back byte for byte, with its flags, under the reported UID."""
    uid = dovecot_server.append(raw_mail(), flags=[b"\\Seen"])

    with dovecot_server.client() as imap:
        imap.select_folder("INBOX", readonly=True)
        fetched = imap.fetch([uid], ["BODY.PEEK[]", "FLAGS"])

    assert fetched[uid][b"BODY[]"] == raw_mail()
    assert b"\\Seen" in fetched[uid][b"FLAGS"]
    assert dovecot_server.list_uids() == [uid]
    assert b"\\Seen" in dovecot_server.flags()[uid]


def test_folders_and_accounts_are_separate(make_dovecot: Callable[..., Dovecot]) -> None:
    """Extra users get their own mailboxes; created folders hold their own mail."""
    server = make_dovecot(extra_users={"volunteer": "pw2"})
    server.create_folder("Archive")
    server.append(raw_mail("archived"), folder="Archive")
    server.append(raw_mail("for volunteer"), user="volunteer")

    assert server.list_uids("INBOX") == []
    assert server.list_uids("Archive") == [1]
    assert server.list_uids(user="volunteer") == [1]
    with IMAPClient(server.host, port=server.port, ssl=False) as imap, pytest.raises(LoginError):
        imap.login("volunteer", "wrong")


@pytest.mark.skipif(os.geteuid() != 0, reason="the ownership rule only applies when tests run as root")
def test_mail_belongs_to_nobody_when_running_as_root(dovecot_server: Dovecot) -> None:
    """As root the maildir is owned by nobody, since Dovecot refuses to serve mail as uid 0."""
    dovecot_server.append(raw_mail())

    assert dovecot_server.maildir().stat().st_uid == 65534


def test_idle_reports_mail_appended_by_another_connection(dovecot_server: Dovecot) -> None:
    """Dovecot advertises IDLE, and an idling imapclient sees EXISTS when another client appends."""
    with dovecot_server.client() as imap:
        assert imap.has_capability("IDLE")
        imap.select_folder("INBOX")
        imap.idle()
        try:
            dovecot_server.append(raw_mail())
            responses = imap.idle_check(timeout=5)
        finally:
            imap.idle_done()

    assert (1, b"EXISTS") in responses


def test_restart_keeps_port_mail_and_uidvalidity(dovecot_server: Dovecot) -> None:
    """A restarted Dovecot listens on the same port with the same mail and UIDVALIDITY."""
    uid = dovecot_server.append(raw_mail())
    port, uidvalidity = dovecot_server.port, dovecot_server.uidvalidity()

    dovecot_server.restart()

    assert dovecot_server.port == port
    assert dovecot_server.list_uids() == [uid]
    assert dovecot_server.uidvalidity() == uidvalidity


def test_change_uidvalidity_gives_a_new_value_and_keeps_mail(dovecot_server: Dovecot) -> None:
    """change_uidvalidity makes Dovecot announce a new UIDVALIDITY while the mails stay."""
    dovecot_server.append(raw_mail("one", "<1@x>"))
    dovecot_server.append(raw_mail("two", "<2@x>"))
    old = dovecot_server.uidvalidity()

    new = dovecot_server.change_uidvalidity()

    assert new != old
    assert dovecot_server.uidvalidity() == new
    assert len(dovecot_server.list_uids()) == 2


def test_tls_client_trusting_the_ca_connects(dovecot_tls_server: Dovecot) -> None:
    """Both implicit TLS and STARTTLS work for a client that trusts the generated CA."""
    server = dovecot_tls_server
    assert server.tls_port is not None and server.ca_cert_path is not None

    with IMAPClient(server.host, port=server.tls_port, ssl_context=server.client_ssl_context()) as imap:
        imap.login(server.user, server.password)
        imap.select_folder("INBOX")
    with IMAPClient(server.host, port=server.port, ssl=False) as imap:
        imap.starttls(ssl.create_default_context(cafile=str(server.ca_cert_path)))
        imap.login(server.user, server.password)
        imap.select_folder("INBOX")


def test_tls_server_certificate_fails_default_verification(dovecot_tls_server: Dovecot) -> None:
    """A client with default verification refuses the test certificate, on imaps and after STARTTLS."""
    server = dovecot_tls_server
    assert server.tls_port is not None

    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(server.host, port=server.tls_port, ssl_context=ssl.create_default_context())
    with IMAPClient(server.host, port=server.port, ssl=False) as imap:
        assert imap.has_capability("STARTTLS")
        with pytest.raises(ssl.SSLCertVerificationError):
            imap.starttls(ssl.create_default_context())


# -- SMTP sink --------------------------------------------------------------------------------------


def send(sink: SmtpSink, message_id: str = "<out-1@triage.test>") -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
        smtp.send_message(email_message(message_id))


def test_sent_mail_lands_in_the_sink(smtp_sink: SmtpSink) -> None:
    """The sink records envelope, raw bytes and Message-ID of a mail sent with smtplib."""
    send(smtp_sink)

    [received] = smtp_sink.messages
    assert received.mail_from == "desk@triage.test"
    assert received.rcpt_tos == ("ana@example.org",)
    assert received.message_id == "<out-1@triage.test>"
    assert b"We are on it." in received.raw
    smtp_sink.clear()
    assert smtp_sink.messages == []


def test_fail_next_answers_451_once_then_accepts(smtp_sink: SmtpSink) -> None:
    """fail_next(451) refuses the next transaction with a temporary error; the retry is accepted."""
    smtp_sink.fail_next(451)

    with pytest.raises(smtplib.SMTPResponseException) as refused:
        send(smtp_sink)
    send(smtp_sink)

    assert refused.value.smtp_code == 451
    assert smtp_sink.message_ids() == ["<out-1@triage.test>"]


@pytest.mark.parametrize(
    ("stage", "error"),
    [
        ("MAIL", smtplib.SMTPSenderRefused),
        ("RCPT", smtplib.SMTPRecipientsRefused),
        ("DATA", smtplib.SMTPDataError),
    ],
)
def test_fail_next_550_at_each_stage(
    smtp_sink: SmtpSink, stage: Stage, error: type[smtplib.SMTPException]
) -> None:
    """fail_next(550, stage=...) refuses permanently at MAIL, RCPT or DATA, and nothing is kept."""
    smtp_sink.fail_next(550, stage=stage)

    with pytest.raises(error) as refused:
        send(smtp_sink)

    assert "550" in str(refused.value)
    assert smtp_sink.messages == []


def test_disconnect_mid_data_raises_server_disconnected(smtp_sink: SmtpSink) -> None:
    """disconnect_next drops the connection after DATA without replying; deliver=True keeps the mail."""
    smtp_sink.disconnect_next()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        send(smtp_sink, "<lost@triage.test>")
    assert smtp_sink.messages == []

    smtp_sink.disconnect_next(deliver=True)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        send(smtp_sink, "<maybe@triage.test>")
    send(smtp_sink, "<after@triage.test>")
    assert smtp_sink.message_ids() == ["<maybe@triage.test>", "<after@triage.test>"]


def test_starttls_and_auth(make_smtp_sink: Callable[..., SmtpSink]) -> None:
    """With STARTTLS and AUTH the sink takes mail only after TLS and a correct login."""
    sink = make_smtp_sink(starttls=True, auth=("desk", "hunter2"))

    with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("auth"), "AUTH must wait for TLS"
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.send_message(email_message())
        assert refused.value.smtp_code == 530
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
        smtp.starttls(context=sink.client_ssl_context())
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login("desk", "wrong")
        smtp.login("desk", "hunter2")
        smtp.send_message(email_message())

    [received] = sink.messages
    assert received.over_tls and received.authenticated_as == "desk"


def test_starttls_refuses_a_client_with_default_verification(make_smtp_sink: Callable[..., SmtpSink]) -> None:
    """The sink's certificate fails default verification, as an untrusted server's should."""
    sink = make_smtp_sink(starttls=True)

    with (
        smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        smtp.starttls(context=ssl.create_default_context())


def test_plain_auth_on_loopback_and_implicit_tls(make_smtp_sink: Callable[..., SmtpSink]) -> None:
    """AUTH works without TLS on loopback, and SMTPS (implicit TLS) accepts mail too."""
    plain = make_smtp_sink(auth=("desk", "hunter2"))
    with smtplib.SMTP(plain.host, plain.port, timeout=10) as smtp:
        smtp.login("desk", "hunter2")
        smtp.send_message(email_message())
    smtps = make_smtp_sink(implicit_tls=True)
    with smtplib.SMTP_SSL(smtps.host, smtps.port, timeout=10, context=smtps.client_ssl_context()) as smtp:
        smtp.send_message(email_message())

    assert plain.messages[0].authenticated_as == "desk"
    assert smtps.messages[0].over_tls
