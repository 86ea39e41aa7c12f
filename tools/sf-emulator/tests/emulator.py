"""Starts scripts/sf-emulator.sh on a free port in a temporary folder, and a tiny REST client."""

import json
import os
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
API = "/services/data/v61.0"


class Emulator:
    def __init__(self, *args, data=None):
        self.tmp = None
        if data is None:
            self.tmp = tempfile.TemporaryDirectory()
            data = self.tmp.name
        self.data = data
        self.proc = subprocess.Popen(
            [os.path.join(ROOT, "scripts", "sf-emulator.sh"), "--port", "0", "--data", data,
             "--cometd-timeout", "2"] + list(args),
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise RuntimeError("emulator did not start: %r" % line)
        self.base = line[len("listening on "):]
        self.token = None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stdout.close()

    def close(self):
        self.stop()
        if self.tmp:
            self.tmp.cleanup()

    def request(self, method, path, body=None, headers=None, form=None, raw=False):
        """(status, parsed JSON body or None, headers)."""
        h = dict(headers or {})
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if self.token and "Authorization" not in h:
            h["Authorization"] = "Bearer " + self.token
        req = urllib.request.Request(self.base + path, data=data, headers=h, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                text = r.read().decode()
                return r.status, (json.loads(text) if text else None), dict(r.headers)
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            return e.code, (json.loads(text) if text else None), dict(e.headers)

    def login(self, client="duplex", secret="secret"):
        status, body, _ = self.request("POST", "/services/oauth2/token",
                                       form={"grant_type": "client_credentials",
                                             "client_id": client, "client_secret": secret})
        assert status == 200, body
        self.token = body["access_token"]
        return body

    def api(self, method, path, body=None, headers=None):
        return self.request(method, API + path, body, headers)

    def query(self, soql, all_rows=False, headers=None):
        return self.api("GET", ("/queryAll" if all_rows else "/query") + "?q=" +
                        urllib.parse.quote_plus(soql), headers=headers)

    def hook(self, name, body=None):
        return self.request("POST" if body is not None else "GET", "/__emulator/" + name, body)


class EmulatorTest(unittest.TestCase):
    args = ()

    def setUp(self):
        self.emu = Emulator(*self.args)
        self.emu.login()

    def tearDown(self):
        self.emu.close()
