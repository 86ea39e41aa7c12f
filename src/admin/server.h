#pragma once

#include <memory>
#include <string>
#include <thread>

#include "duplex/result.h"
#include "pipeline/telemetry.h"

namespace httplib {
class Server;
}

namespace duplex {

class StateStore;

// The HTTP admin server of `duplex run` (DESIGN §8): the dashboard at /, /metrics (Prometheus
// text), /healthz, /readyz, and the JSON API under /api/v1/.
//
// Concurrency: it runs on its own threads and never touches the engine. It reads the
// telemetry the engine thread publishes to a TelemetryHub, and reaches the state file through
// its own SQLite connection (WAL mode: it reads next to the engine; an operator's resolve or
// retry is one short write transaction the engine picks up, as from the CLI).
//
// Security: bound to a loopback address it serves anyone on the machine. Bound elsewhere it
// needs a bearer token (Start fails without one) and then answers 401 to any request without
// `Authorization: Bearer <token>`, except /healthz and the dashboard's static files (they hold
// no data; the page asks for the token and sends it with every API call).
class AdminServer {
 public:
  struct Options {
    std::string address;     // "HOST:PORT"; port 0 picks a free one
    std::string token;       // empty: no token (only allowed on loopback)
    std::string state_path;  // the engine's state file
  };

  ~AdminServer();

  // Binds and starts serving on a thread of its own. InvalidArgument for an address off
  // loopback without a token; Unavailable if the address cannot be bound.
  static Result<std::unique_ptr<AdminServer>> Start(const Options& o, TelemetryHub& hub);

  // The port actually bound.
  int port() const { return port_; }

  // Stops serving and joins its threads. Called by the destructor.
  void Stop();

  // Whether `host` is a loopback address (127.0.0.0/8, ::1, localhost).
  static bool IsLoopback(const std::string& host);

 private:
  AdminServer() = default;
  void Routes();

  class Handlers;
  std::unique_ptr<httplib::Server> server_;
  std::unique_ptr<Handlers> handlers_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace duplex
