// duplex: the command line. Flags and help live here; the work is in one file per command
// under src/cli/ (commands.h lists them).
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "util/log.h"

// Read by jemalloc when the binary is linked with it (release builds, CMakeLists.txt): give
// freed pages back after 1 s instead of 10 s. Peak RSS with a 1M-row backlog drops from
// 140-209 MiB to about 75 MiB at the same CPU per row (BENCHMARKS.md). Unused otherwise.
extern "C" {
// NOLINTNEXTLINE(readability-identifier-naming): the name jemalloc looks for.
const char* malloc_conf = "dirty_decay_ms:1000,muzzy_decay_ms:0";
}

int main(int argc, char** argv) {
  using duplex::cli::Options;
  Options o;
  std::string log_level = "info", log_format = "text";

  CLI::App app{
      "duplex keeps databases that all accept writes in sync, in both directions: one change\n"
      "capture, one shared sync state, one conflict resolver with per-field policies.\n\n"
      "Quick start:\n"
      "  duplex init                      # writes an example duplex.toml\n"
      "  duplex check --config duplex.toml\n"
      "  duplex run --config duplex.toml  # until Ctrl-C; --until-idle to sync and exit\n\n"
      "Exit codes: 0 ok, 1 runtime failure (endpoint unreachable, I/O), 2 bad config or\n"
      "usage, 3 `run --until-idle` finished but records remain parked (dead letters).\n"
      "Messages name the config file as --config gave it.",
      "duplex"};
  app.require_subcommand(1);
  app.fallthrough();  // --log-level and --log-format may come after the subcommand too
  app.set_version_flag("--version", "duplex 0.1.0");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text or json (one object per line)")
      ->capture_default_str();

  auto add_config = [&](CLI::App* cmd) {
    cmd->add_option("-c,--config", o.config, "the config file")->capture_default_str();
  };

  CLI::App* init = app.add_subcommand("init", "Write a commented example config");
  init->footer(
      "Example:\n  duplex init --config sync.toml\nThen edit the endpoints and "
      "collections, and run `duplex check --config sync.toml`.");
  add_config(init);
  init->add_flag("--force", o.force, "overwrite an existing file");

  CLI::App* check = app.add_subcommand(
      "check", "Check the config and every endpoint; print what is synced and left alone");
  check->footer(
      "Writes nothing unless --install. For a PostgreSQL endpoint it also lists what the server\n"
      "lacks (wal_level, replication slots, privileges, primary keys, replica identity), each\n"
      "with the statement that fixes it. It goes on past a problem and lists every one it\n"
      "finds (unreachable endpoints, missing tables and columns, type clashes), then their\n"
      "count. Exit code 2 if any is in the config, a table or a server's setup; 1 if endpoints\n"
      "are only unreachable. A syntax error in the config file stops it at the first.\n"
      "Example:\n  duplex check --config duplex.toml\n  duplex check --config "
      "duplex.toml --install   # also install change capture now");
  add_config(check);
  check->add_flag("--install", o.install,
                  "install change capture on every endpoint (triggers; on PostgreSQL a "
                  "replication slot or triggers) and do the initial load");

  CLI::App* run = app.add_subcommand("run", "Run the sync engine");
  run->footer(
      "Runs until SIGINT/SIGTERM and exits cleanly. The first run installs change capture\n"
      "and does the initial load: rows that exist before duplex ever ran are synced too.\n"
      "With `http = \"127.0.0.1:8787\"` in [engine] it serves a dashboard, /metrics, /healthz,\n"
      "/readyz and a JSON API under /api/v1/ (README). On a terminal, --until-idle redraws\n"
      "one progress line; otherwise progress comes as log lines every few seconds while a\n"
      "backlog is worked off (capture installed, rows each initial load has read, changes\n"
      "synced and left), and the total at the end.\n"
      "Example:\n  duplex run --config duplex.toml\n  duplex run --config duplex.toml "
      "--until-idle   # sync everything pending, then exit");
  add_config(run);
  run->add_flag("--until-idle", o.until_idle, "sync everything pending, then exit");

  CLI::App* status = app.add_subcommand(
      "status", "Per endpoint: position, backlog, last error; per collection: records, conflicts");
  status->footer(
      "TO-CAPTURE is `unknown` (null in --json) where an endpoint cannot count the changes it\n"
      "has not captured yet (a Salesforce org; a PostgreSQL slot outside `run`) or cannot be\n"
      "reached now.\n"
      "Example:\n  duplex status --config duplex.toml --json");
  add_config(status);
  status->add_flag("--json", o.json, "print JSON");

  CLI::App* uninstall =
      app.add_subcommand("uninstall", "Remove everything duplex created on the endpoints");
  uninstall->footer(
      "Removes duplex's triggers and tables; on PostgreSQL also the replication slot (which\n"
      "holds WAL until dropped), the publication, the replication origin and the trigger\n"
      "functions. The engine's state file is left alone; delete it to start over.\n"
      "Example:\n  duplex uninstall --config duplex.toml --endpoint crm");
  add_config(uninstall);
  uninstall->add_option("--endpoint", o.endpoint, "only this endpoint");

  CLI::App* reconcile = app.add_subcommand(
      "reconcile", "Compare every record across endpoints and repair what differs");
  reconcile->footer(
      "For drift no change stream reported: a bulk fix made with capture off, a table restored\n"
      "from a copy, an endpoint added to a collection that already synced. It first syncs what\n"
      "is pending (as `run --until-idle`), then compares each collection across its endpoints\n"
      "by digests of key-hash ranges computed on each endpoint (an aggregate query on\n"
      "PostgreSQL), reading back only the rows of the ranges that differ. A value that differs\n"
      "from the agreed one on one endpoint is taken as an edit made there and wins (merged by\n"
      "the field policies where several endpoints differ); a row missing on an endpoint is\n"
      "copied there, one duplex saw deleted is deleted. --take makes one endpoint the truth.\n"
      "The repaired records are compared again at the end. A running `duplex run` holds the\n"
      "state file: reconcile then refuses (exit 1); set [engine] reconcile_every instead.\n"
      "Exit codes: 0 nothing differs, 1 differences found (and repaired unless --dry-run),\n"
      "2 bad config or usage, 3 repaired but some writes parked as dead letters.\n"
      "Examples:\n  duplex reconcile --config duplex.toml --dry-run --json\n"
      "  duplex reconcile --config duplex.toml --collection customers --take crm");
  add_config(reconcile);
  reconcile->add_option("--collection", o.collection, "only this collection");
  reconcile->add_flag("--dry-run", o.dry_run, "list the differences, change nothing");
  reconcile->add_flag("--json", o.json,
                      "print JSON: per collection what was compared, and every difference "
                      "(collection, key, field, each endpoint's value)");
  reconcile->add_option("--take", o.take,
                        "this endpoint is the source of truth: the others are made to match it");

  CLI::App* conflicts = app.add_subcommand("conflicts", "List, show and resolve conflicts");
  conflicts->require_subcommand(1);
  conflicts->footer(
      "Examples:\n  duplex conflicts list --config duplex.toml\n"
      "  duplex conflicts show 3 --config duplex.toml\n"
      "  duplex conflicts resolve 3 --take crm --config duplex.toml\n"
      "  duplex conflicts resolve 3 --value '\"Gold\"' --config duplex.toml");
  CLI::App* clist = conflicts->add_subcommand(
      "list", "Open conflicts (manual ones waiting for you); --all for the whole conflict log");
  add_config(clist);
  clist->add_flag("--json", o.json, "print a JSON array");
  clist->add_flag("--all", o.all, "every logged conflict, resolved ones included");
  CLI::App* cshow = conflicts->add_subcommand("show", "One conflict, all its values");
  add_config(cshow);
  cshow->add_option("id", o.conflict_id, "conflict id")->required();
  cshow->add_flag("--json", o.json, "print JSON");
  CLI::App* cresolve = conflicts->add_subcommand(
      "resolve", "Resolve an open conflict; the value reaches every endpoint on the next run");
  add_config(cresolve);
  cresolve->add_option("id", o.conflict_id, "conflict id")->required();
  auto* take = cresolve->add_option("--take", o.take, "take this endpoint's value");
  auto* value =
      cresolve->add_option("--value", o.value, "take this JSON value, e.g. '\"Gold\"' or 42");
  take->excludes(value);
  value->excludes(take);
  cresolve->add_flag("--json", o.json, "print the resolved conflict as JSON");

  CLI::App* dead =
      app.add_subcommand("dead-letters", "List, show, retry and drop parked source transactions");
  dead->require_subcommand(1);
  dead->footer(
      "A dead letter is a source transaction a target refused (constraint, type): its row\n"
      "writes, none of which were applied there. Fix the cause, then retry it: its records are\n"
      "planned again from their current state and applied by `run`. Or drop it: its writes are\n"
      "never applied, and the target's rows may stay diverged until they change again.\n"
      "Examples:\n"
      "  duplex dead-letters list --config duplex.toml\n"
      "  duplex dead-letters show 4 --config duplex.toml\n"
      "  duplex dead-letters retry 4 --config duplex.toml\n"
      "  duplex dead-letters retry --all --config duplex.toml\n"
      "  duplex dead-letters drop 4 --config duplex.toml");
  CLI::App* dlist = dead->add_subcommand(
      "list", "One line per dead letter: endpoint, collections, writes, first key, reason, age");
  add_config(dlist);
  dlist->add_flag("--json", o.json, "print a JSON array");
  CLI::App* dshow =
      dead->add_subcommand("show", "One dead letter in full: reason, time, every row write");
  add_config(dshow);
  dshow->add_option("id", o.dead_letter_id, "dead letter id")->required();
  dshow->add_flag("--json", o.json, "print JSON");
  CLI::App* dretry = dead->add_subcommand(
      "retry", "Plan a dead letter's records again and apply them (by `run`); ID or --all");
  add_config(dretry);
  auto* retry_id = dretry->add_option("id", o.dead_letter_id, "dead letter id");
  auto* retry_all = dretry->add_flag("--all", o.all, "retry every dead letter");
  retry_id->excludes(retry_all);
  retry_all->excludes(retry_id);
  dretry->add_flag("--json", o.json, "print JSON");
  CLI::App* ddrop = dead->add_subcommand(
      "drop", "Give up on a dead letter: delete it; its writes are never applied");
  add_config(ddrop);
  ddrop->add_option("id", o.dead_letter_id, "dead letter id")->required();
  ddrop->add_flag("--json", o.json, "print the dropped dead letter as JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : duplex::cli::kExitUsage;
  }
  if (!duplex::SetupLogging(log_level, log_format)) {
    std::fprintf(stderr, "error: bad --log-level '%s' or --log-format '%s'\n", log_level.c_str(),
                 log_format.c_str());
    return duplex::cli::kExitUsage;
  }
  if (*init) return duplex::cli::Init(o);
  if (*check) return duplex::cli::Check(o);
  if (*run) return duplex::cli::Run(o);
  if (*status) return duplex::cli::Status(o);
  if (*uninstall) return duplex::cli::Uninstall(o);
  if (*reconcile) return duplex::cli::Reconcile(o);
  if (*clist) return duplex::cli::ConflictsList(o);
  if (*cshow) return duplex::cli::ConflictsShow(o);
  if (*dlist) return duplex::cli::DeadLettersList(o);
  if (*dshow) return duplex::cli::DeadLettersShow(o);
  if (*ddrop) return duplex::cli::DeadLettersDrop(o);
  if (*dretry) {
    if (o.dead_letter_id.empty() && !o.all) {
      std::fprintf(stderr, "error: give a dead letter ID or --all\n");
      return duplex::cli::kExitUsage;
    }
    return duplex::cli::DeadLettersRetry(o);
  }
  if (*cresolve) {
    if (o.take.empty() && o.value.empty()) {
      std::fprintf(stderr, "error: give --take ENDPOINT or --value JSON\n");
      return duplex::cli::kExitUsage;
    }
    return duplex::cli::ConflictsResolve(o);
  }
  return duplex::cli::kExitUsage;
}
