#pragma once

#include <string>
#include <vector>

#include "connectors/postgres/applier.h"
#include "connectors/postgres/capture.h"
#include "connectors/postgres/key_map.h"

namespace duplex::pg {

// What duplex puts on the server and takes away (README "Connections", "Mapped keys"): the
// preflight checks, the `tables` registry, the key map, the capture mode's objects and each
// table's capture with its initial load (through PgCapture), and Uninstall, which removes the
// objects of either mode. On the `db` connection. One engine thread at a time.
class Installer {
 public:
  Installer(PgEndpoint& ep, KeyMap& keys, PgCapture& capture, Applier& applier)
      : ep_(ep), keys_(keys), capture_(capture), applier_(applier) {}
  Installer(const Installer&) = delete;
  Installer& operator=(const Installer&) = delete;

  // Connector::Preflight, IsInstalled, Install and Uninstall.
  Result<std::vector<std::string>> Preflight();
  Result<bool> IsInstalled();
  // No DDL at all when IsInstalled(); otherwise what is needed, each lock waited for at most
  // kLockTimeout (Unavailable past it: tried again later).
  Status Install();
  Status Uninstall();

  static constexpr const char* kLockTimeout = "500ms";

 private:
  Status InstallAll();
  PgEndpoint& ep_;
  KeyMap& keys_;
  PgCapture& capture_;
  Applier& applier_;
};

}  // namespace duplex::pg
