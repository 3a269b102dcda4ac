# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_howl_global_optspecs
    string join \n v/verbose q/quiet log-format= h/help V/version
end

function __fish_howl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_howl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_howl_using_subcommand
    set -l cmd (__fish_howl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c howl -n "__fish_howl_needs_command" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_needs_command" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_needs_command" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_needs_command" -s V -l version -d 'Print version'
complete -c howl -n "__fish_howl_needs_command" -f -a "run" -d 'Run a topology (the built-in demo when no config is given)'
complete -c howl -n "__fish_howl_needs_command" -f -a "validate" -d 'Check configs and report every problem at once'
complete -c howl -n "__fish_howl_needs_command" -f -a "test" -d 'Run the config\'s `[[tests]]`: events in, transforms run, outputs checked'
complete -c howl -n "__fish_howl_needs_command" -f -a "graph" -d 'Print the topology as a graph (Graphviz dot or Mermaid)'
complete -c howl -n "__fish_howl_needs_command" -f -a "patterns" -d 'Mine, list and compare log patterns without a topology'
complete -c howl -n "__fish_howl_needs_command" -f -a "suppress" -d 'Suppress a pattern in a running howl (through its API)'
complete -c howl -n "__fish_howl_needs_command" -f -a "unsuppress" -d 'End a pattern\'s suppression in a running howl'
complete -c howl -n "__fish_howl_needs_command" -f -a "suppressions" -d 'List the suppressions of a running howl'
complete -c howl -n "__fish_howl_needs_command" -f -a "audit" -d 'Show the decisions a running howl recorded: who suppressed, undid or set what, the verdicts and the rules applied'
complete -c howl -n "__fish_howl_needs_command" -f -a "review" -d 'What changed in the pattern stores since the last review (new, gone quiet, spiking patterns, level shifts) and the rules it suggests'
complete -c howl -n "__fish_howl_needs_command" -f -a "rules" -d 'List or apply the rules reviews suggested'
complete -c howl -n "__fish_howl_needs_command" -f -a "tap" -d 'Print the events leaving a component of a running howl, as JSON lines (through its API)'
complete -c howl -n "__fish_howl_needs_command" -f -a "top" -d 'What a running howl is doing, per component: events per second, errors, discards, buffers, delivery latency (through its API)'
complete -c howl -n "__fish_howl_needs_command" -f -a "generate" -d 'A topology to start from (`howl generate topology stdin,pattern,console`), shell completions and the man page'
complete -c howl -n "__fish_howl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c howl -n "__fish_howl_using_subcommand run" -s c -l config -d 'A TOML config file; repeat (or separate with commas in `HOWL_CONFIG`) to merge several files into one topology' -r -F
complete -c howl -n "__fish_howl_using_subcommand run" -l graceful-shutdown-limit -d 'Seconds shutdown may take (draining buffers, flushing sinks) before howl gives up, names the components still busy and exits 1' -r
complete -c howl -n "__fish_howl_using_subcommand run" -l threads -d 'Worker threads of the async runtime; unset: one per core. At the edge, `--threads 1` costs the least CPU per line (nothing is handed between cores, and no idle worker searches for work), at some throughput. At most 1024' -r
complete -c howl -n "__fish_howl_using_subcommand run" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand run" -l watch-config -d 'Reload the config when a config file changes (as on SIGHUP or `POST /api/v1/reload`): what changed is rebuilt, the rest runs on with its state; an invalid config is refused and the old one kept'
complete -c howl -n "__fish_howl_using_subcommand run" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand run" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand validate" -s c -l config -d 'A TOML config file; repeat (or separate with commas in `HOWL_CONFIG`) to merge several files into one topology' -r -F
complete -c howl -n "__fish_howl_using_subcommand validate" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand validate" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand validate" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand validate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand test" -s c -l config -d 'A TOML config file; repeat (or separate with commas in `HOWL_CONFIG`) to merge several files into one topology' -r -F
complete -c howl -n "__fish_howl_using_subcommand test" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand test" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand test" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand test" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand graph" -s c -l config -d 'A TOML config file; repeat (or separate with commas in `HOWL_CONFIG`) to merge several files into one topology' -r -F
complete -c howl -n "__fish_howl_using_subcommand graph" -l format -d 'Output format' -r -f -a "dot\t'Graphviz (`howl graph | dot -Tsvg > topology.svg`)'
mermaid\t'Mermaid (renders in GitHub and GitLab markdown)'"
complete -c howl -n "__fish_howl_using_subcommand graph" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand graph" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand graph" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand graph" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand patterns; and not __fish_seen_subcommand_from mine list diff train help" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand patterns; and not __fish_seen_subcommand_from mine list diff train help" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand patterns; and not __fish_seen_subcommand_from mine list diff train help" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand patterns; and not __fish_seen_subcommand_from mine list diff train help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand patterns; and not __fish_seen_subcommand_from mine list diff train help" -f -a "mine" -d 'Mine patterns from one message per line (a file, or stdin with `-`)'
complete -c howl -n "__fish_howl_using_subcommand patterns; and not __fish_seen_subcommand_from mine list diff train help" -f -a "list" -d 'List the patterns in a store'
complete -c howl -n "__fish_howl_using_subcommand patterns; and not __fish_seen_subcommand_from mine list diff train help" -f -a "diff" -d 'Compare two stores: new, gone and spiking patterns (exit 1 if any is new)'
complete -c howl -n "__fish_howl_using_subcommand patterns; and not __fish_seen_subcommand_from mine list diff train help" -f -a "train" -d 'Learn the patterns of a past window from a config\'s query sources (`loki_query`, `sql`) into its data_dir, without sinks or alerts'
complete -c howl -n "__fish_howl_using_subcommand patterns; and not __fish_seen_subcommand_from mine list diff train help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from mine" -l format -d '`jsonl`: one `{"line","id","template","new"}` object per input line; `table`: the patterns by count, with a sample' -r -f -a "table\t''
jsonl\t''"
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from mine" -l config -d 'Miner options in TOML: the options of the `pattern` transform (`masks`, `disable_builtin_masks`, `similarity`, ...)' -r -F
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from mine" -l data-dir -d 'Start from, and save to, the pattern store in this directory' -r -F
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from mine" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from mine" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from mine" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from mine" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from list" -l data-dir -d 'The directory holding the store (a `data_dir`)' -r -F
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from list" -l new-since -d 'Only patterns first seen within this long, e.g. `1h`, `7d`' -r
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from list" -l format -d 'Output format' -r -f -a "table\t''
json\t''"
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from list" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from diff" -l baseline -d 'The reference store (e.g. built on the main branch)' -r -F
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from diff" -l current -d 'The store to judge' -r -F
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from diff" -l format -d 'Output format' -r -f -a "table\t''
json\t''"
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from diff" -l config -d 'Miner options in TOML (as for `mine`), used to classify samples' -r -F
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from diff" -l spike-factor -d 'A pattern spikes when its share of lines is at least this many times its share in the baseline' -r
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from diff" -l spike-min-count -d '... and it has at least this many lines' -r
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from diff" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from diff" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from diff" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from diff" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from train" -s c -l config -d 'A TOML config file; repeat (or separate with commas in `HOWL_CONFIG`) to merge several files into one topology' -r -F
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from train" -l since -d 'Where the window starts: this long ago, e.g. `24h`, `7d`' -r
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from train" -l until -d 'Where it ends: this long ago (`1h`) or an RFC 3339 time; now when unset' -r
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from train" -l top -d 'How many templates of each level the summary shows' -r
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from train" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from train" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from train" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from train" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from help" -f -a "mine" -d 'Mine patterns from one message per line (a file, or stdin with `-`)'
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the patterns in a store'
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from help" -f -a "diff" -d 'Compare two stores: new, gone and spiking patterns (exit 1 if any is new)'
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from help" -f -a "train" -d 'Learn the patterns of a past window from a config\'s query sources (`loki_query`, `sql`) into its data_dir, without sinks or alerts'
complete -c howl -n "__fish_howl_using_subcommand patterns; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c howl -n "__fish_howl_using_subcommand suppress" -l reason -d 'Why it is noise (kept as the audit trail)' -r
complete -c howl -n "__fish_howl_using_subcommand suppress" -l ttl -d 'How long, e.g. `7d`, `12h`; without it, until `howl unsuppress`' -r
complete -c howl -n "__fish_howl_using_subcommand suppress" -l created-by -d 'Who decides (default: `$USER`)' -r
complete -c howl -n "__fish_howl_using_subcommand suppress" -l api -d 'The base URL of a running howl\'s API (`[api] address`)' -r
complete -c howl -n "__fish_howl_using_subcommand suppress" -l token -d 'The API\'s `[api] auth_token`, needed to change suppressions when one is set' -r
complete -c howl -n "__fish_howl_using_subcommand suppress" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand suppress" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand suppress" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand suppress" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand unsuppress" -l by -d 'Who decides (default: `$USER`), for the audit trail' -r
complete -c howl -n "__fish_howl_using_subcommand unsuppress" -l api -d 'The base URL of a running howl\'s API (`[api] address`)' -r
complete -c howl -n "__fish_howl_using_subcommand unsuppress" -l token -d 'The API\'s `[api] auth_token`, needed to change suppressions when one is set' -r
complete -c howl -n "__fish_howl_using_subcommand unsuppress" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand unsuppress" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand unsuppress" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand unsuppress" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand suppressions" -l format -d 'Output format' -r -f -a "table\t''
json\t''"
complete -c howl -n "__fish_howl_using_subcommand suppressions" -l api -d 'The base URL of a running howl\'s API (`[api] address`)' -r
complete -c howl -n "__fish_howl_using_subcommand suppressions" -l token -d 'The API\'s `[api] auth_token`, needed to change suppressions when one is set' -r
complete -c howl -n "__fish_howl_using_subcommand suppressions" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand suppressions" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand suppressions" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand suppressions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand audit" -l pattern -d 'Only decisions about this pattern' -r
complete -c howl -n "__fish_howl_using_subcommand audit" -l limit -d 'At most this many, newest first' -r
complete -c howl -n "__fish_howl_using_subcommand audit" -l format -d 'Output format' -r -f -a "table\t''
json\t''"
complete -c howl -n "__fish_howl_using_subcommand audit" -l api -d 'The base URL of a running howl\'s API (`[api] address`)' -r
complete -c howl -n "__fish_howl_using_subcommand audit" -l token -d 'The API\'s `[api] auth_token`, needed to change suppressions when one is set' -r
complete -c howl -n "__fish_howl_using_subcommand audit" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand audit" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand audit" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand audit" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand review" -l data-dir -d 'Review a stopped howl\'s store in this directory instead of asking a running one' -r -F
complete -c howl -n "__fish_howl_using_subcommand review" -l api -d 'The base URL of a running howl\'s API (`[api] address`)' -r
complete -c howl -n "__fish_howl_using_subcommand review" -l token -d 'The API\'s `[api] auth_token`, needed to change suppressions when one is set' -r
complete -c howl -n "__fish_howl_using_subcommand review" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand review" -l commit -d 'Leave the review\'s checkpoint (the next review compares with now) and keep its suggestions for `howl rules`. Without it, the review only looks: a scheduled `review` source keeps its baseline'
complete -c howl -n "__fish_howl_using_subcommand review" -l json -d 'Print the digest as JSON'
complete -c howl -n "__fish_howl_using_subcommand review" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand review" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand review" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand rules; and not __fish_seen_subcommand_from list apply help" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand rules; and not __fish_seen_subcommand_from list apply help" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand rules; and not __fish_seen_subcommand_from list apply help" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand rules; and not __fish_seen_subcommand_from list apply help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand rules; and not __fish_seen_subcommand_from list apply help" -f -a "list" -d 'The suggestions of the last reviews, waiting to be applied'
complete -c howl -n "__fish_howl_using_subcommand rules; and not __fish_seen_subcommand_from list apply help" -f -a "apply" -d 'Applies a suggestion by its id (`rule-...`)'
complete -c howl -n "__fish_howl_using_subcommand rules; and not __fish_seen_subcommand_from list apply help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c howl -n "__fish_howl_using_subcommand rules; and __fish_seen_subcommand_from list" -l api -d 'The base URL of a running howl\'s API (`[api] address`)' -r
complete -c howl -n "__fish_howl_using_subcommand rules; and __fish_seen_subcommand_from list" -l token -d 'The API\'s `[api] auth_token`, needed to change suppressions when one is set' -r
complete -c howl -n "__fish_howl_using_subcommand rules; and __fish_seen_subcommand_from list" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand rules; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand rules; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand rules; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand rules; and __fish_seen_subcommand_from apply" -l api -d 'The base URL of a running howl\'s API (`[api] address`)' -r
complete -c howl -n "__fish_howl_using_subcommand rules; and __fish_seen_subcommand_from apply" -l token -d 'The API\'s `[api] auth_token`, needed to change suppressions when one is set' -r
complete -c howl -n "__fish_howl_using_subcommand rules; and __fish_seen_subcommand_from apply" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand rules; and __fish_seen_subcommand_from apply" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand rules; and __fish_seen_subcommand_from apply" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand rules; and __fish_seen_subcommand_from apply" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand rules; and __fish_seen_subcommand_from help" -f -a "list" -d 'The suggestions of the last reviews, waiting to be applied'
complete -c howl -n "__fish_howl_using_subcommand rules; and __fish_seen_subcommand_from help" -f -a "apply" -d 'Applies a suggestion by its id (`rule-...`)'
complete -c howl -n "__fish_howl_using_subcommand rules; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c howl -n "__fish_howl_using_subcommand tap" -l sample -d 'Keep one event in N' -r
complete -c howl -n "__fish_howl_using_subcommand tap" -l limit -d 'Stop after this many events' -r
complete -c howl -n "__fish_howl_using_subcommand tap" -l filter -d 'A VRL condition: only the events for which it is true, e.g. `.level == "error"`' -r
complete -c howl -n "__fish_howl_using_subcommand tap" -l api -d 'The base URL of a running howl\'s API (`[api] address`)' -r
complete -c howl -n "__fish_howl_using_subcommand tap" -l token -d 'The API\'s `[api] auth_token`, needed to change suppressions when one is set' -r
complete -c howl -n "__fish_howl_using_subcommand tap" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand tap" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand tap" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand tap" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand top" -l interval -d 'Seconds between refreshes (and the window of `--once`\'s rates)' -r
complete -c howl -n "__fish_howl_using_subcommand top" -l api -d 'The base URL of a running howl\'s API (`[api] address`)' -r
complete -c howl -n "__fish_howl_using_subcommand top" -l token -d 'The API\'s `[api] auth_token`, needed to change suppressions when one is set' -r
complete -c howl -n "__fish_howl_using_subcommand top" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand top" -l once -d 'Print one snapshot (rates over one second) as plain text and exit'
complete -c howl -n "__fish_howl_using_subcommand top" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand top" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand top" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand generate; and not __fish_seen_subcommand_from topology completions man help" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand generate; and not __fish_seen_subcommand_from topology completions man help" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand generate; and not __fish_seen_subcommand_from topology completions man help" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand generate; and not __fish_seen_subcommand_from topology completions man help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand generate; and not __fish_seen_subcommand_from topology completions man help" -f -a "topology" -d 'A topology to start from, on stdout, e.g. `howl generate topology stdin,pattern,llm_suppress,telegram > howl.toml`'
complete -c howl -n "__fish_howl_using_subcommand generate; and not __fish_seen_subcommand_from topology completions man help" -f -a "completions" -d 'Shell completions on stdout, e.g. `howl generate completions bash > /usr/share/bash-completion/completions/howl`'
complete -c howl -n "__fish_howl_using_subcommand generate; and not __fish_seen_subcommand_from topology completions man help" -f -a "man" -d 'The man page (roff) on stdout, e.g. `howl generate man > howl.1`'
complete -c howl -n "__fish_howl_using_subcommand generate; and not __fish_seen_subcommand_from topology completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c howl -n "__fish_howl_using_subcommand generate; and __fish_seen_subcommand_from topology" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand generate; and __fish_seen_subcommand_from topology" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand generate; and __fish_seen_subcommand_from topology" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand generate; and __fish_seen_subcommand_from topology" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand generate; and __fish_seen_subcommand_from completions" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand generate; and __fish_seen_subcommand_from completions" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand generate; and __fish_seen_subcommand_from completions" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand generate; and __fish_seen_subcommand_from completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand generate; and __fish_seen_subcommand_from man" -l log-format -d 'Format of howl\'s own log lines (on stderr)' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c howl -n "__fish_howl_using_subcommand generate; and __fish_seen_subcommand_from man" -s v -l verbose -d 'More log output (`-v` debug, `-vv` trace). `HOWL_LOG` (a tracing filter such as `howl=debug`) overrides it'
complete -c howl -n "__fish_howl_using_subcommand generate; and __fish_seen_subcommand_from man" -s q -l quiet -d 'Less log output (`-q` warnings and errors, `-qq` errors only)'
complete -c howl -n "__fish_howl_using_subcommand generate; and __fish_seen_subcommand_from man" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c howl -n "__fish_howl_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "topology" -d 'A topology to start from, on stdout, e.g. `howl generate topology stdin,pattern,llm_suppress,telegram > howl.toml`'
complete -c howl -n "__fish_howl_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "completions" -d 'Shell completions on stdout, e.g. `howl generate completions bash > /usr/share/bash-completion/completions/howl`'
complete -c howl -n "__fish_howl_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "man" -d 'The man page (roff) on stdout, e.g. `howl generate man > howl.1`'
complete -c howl -n "__fish_howl_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c howl -n "__fish_howl_using_subcommand help; and not __fish_seen_subcommand_from run validate test graph patterns suppress unsuppress suppressions audit review rules tap top generate help" -f -a "run" -d 'Run a topology (the built-in demo when no config is given)'
complete -c howl -n "__fish_howl_using_subcommand help; and not __fish_seen_subcommand_from run validate test graph patterns suppress unsuppress suppressions audit review rules tap top generate help" -f -a "validate" -d 'Check configs and report every problem at once'
complete -c howl -n "__fish_howl_using_subcommand help; and not __fish_seen_subcommand_from run validate test graph patterns suppress unsuppress suppressions audit review rules tap top generate help" -f -a "test" -d 'Run the config\'s `[[tests]]`: events in, transforms run, outputs checked'
complete -c howl -n "__fish_howl_using_subcommand help; and not __fish_seen_subcommand_from run validate test graph patterns suppress unsuppress suppressions audit review rules tap top generate help" -f -a "graph" -d 'Print the topology as a graph (Graphviz dot or Mermaid)'
complete -c howl -n "__fish_howl_using_subcommand help; and not __fish_seen_subcommand_from run validate test graph patterns suppress unsuppress suppressions audit review rules tap top generate help" -f -a "patterns" -d 'Mine, list and compare log patterns without a topology'
complete -c howl -n "__fish_howl_using_subcommand help; and not __fish_seen_subcommand_from run validate test graph patterns suppress unsuppress suppressions audit review rules tap top generate help" -f -a "suppress" -d 'Suppress a pattern in a running howl (through its API)'
complete -c howl -n "__fish_howl_using_subcommand help; and not __fish_seen_subcommand_from run validate test graph patterns suppress unsuppress suppressions audit review rules tap top generate help" -f -a "unsuppress" -d 'End a pattern\'s suppression in a running howl'
complete -c howl -n "__fish_howl_using_subcommand help; and not __fish_seen_subcommand_from run validate test graph patterns suppress unsuppress suppressions audit review rules tap top generate help" -f -a "suppressions" -d 'List the suppressions of a running howl'
complete -c howl -n "__fish_howl_using_subcommand help; and not __fish_seen_subcommand_from run validate test graph patterns suppress unsuppress suppressions audit review rules tap top generate help" -f -a "audit" -d 'Show the decisions a running howl recorded: who suppressed, undid or set what, the verdicts and the rules applied'
complete -c howl -n "__fish_howl_using_subcommand help; and not __fish_seen_subcommand_from run validate test graph patterns suppress unsuppress suppressions audit review rules tap top generate help" -f -a "review" -d 'What changed in the pattern stores since the last review (new, gone quiet, spiking patterns, level shifts) and the rules it suggests'
complete -c howl -n "__fish_howl_using_subcommand help; and not __fish_seen_subcommand_from run validate test graph patterns suppress unsuppress suppressions audit review rules tap top generate help" -f -a "rules" -d 'List or apply the rules reviews suggested'
complete -c howl -n "__fish_howl_using_subcommand help; and not __fish_seen_subcommand_from run validate test graph patterns suppress unsuppress suppressions audit review rules tap top generate help" -f -a "tap" -d 'Print the events leaving a component of a running howl, as JSON lines (through its API)'
complete -c howl -n "__fish_howl_using_subcommand help; and not __fish_seen_subcommand_from run validate test graph patterns suppress unsuppress suppressions audit review rules tap top generate help" -f -a "top" -d 'What a running howl is doing, per component: events per second, errors, discards, buffers, delivery latency (through its API)'
complete -c howl -n "__fish_howl_using_subcommand help; and not __fish_seen_subcommand_from run validate test graph patterns suppress unsuppress suppressions audit review rules tap top generate help" -f -a "generate" -d 'A topology to start from (`howl generate topology stdin,pattern,console`), shell completions and the man page'
complete -c howl -n "__fish_howl_using_subcommand help; and not __fish_seen_subcommand_from run validate test graph patterns suppress unsuppress suppressions audit review rules tap top generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c howl -n "__fish_howl_using_subcommand help; and __fish_seen_subcommand_from patterns" -f -a "mine" -d 'Mine patterns from one message per line (a file, or stdin with `-`)'
complete -c howl -n "__fish_howl_using_subcommand help; and __fish_seen_subcommand_from patterns" -f -a "list" -d 'List the patterns in a store'
complete -c howl -n "__fish_howl_using_subcommand help; and __fish_seen_subcommand_from patterns" -f -a "diff" -d 'Compare two stores: new, gone and spiking patterns (exit 1 if any is new)'
complete -c howl -n "__fish_howl_using_subcommand help; and __fish_seen_subcommand_from patterns" -f -a "train" -d 'Learn the patterns of a past window from a config\'s query sources (`loki_query`, `sql`) into its data_dir, without sinks or alerts'
complete -c howl -n "__fish_howl_using_subcommand help; and __fish_seen_subcommand_from rules" -f -a "list" -d 'The suggestions of the last reviews, waiting to be applied'
complete -c howl -n "__fish_howl_using_subcommand help; and __fish_seen_subcommand_from rules" -f -a "apply" -d 'Applies a suggestion by its id (`rule-...`)'
complete -c howl -n "__fish_howl_using_subcommand help; and __fish_seen_subcommand_from generate" -f -a "topology" -d 'A topology to start from, on stdout, e.g. `howl generate topology stdin,pattern,llm_suppress,telegram > howl.toml`'
complete -c howl -n "__fish_howl_using_subcommand help; and __fish_seen_subcommand_from generate" -f -a "completions" -d 'Shell completions on stdout, e.g. `howl generate completions bash > /usr/share/bash-completion/completions/howl`'
complete -c howl -n "__fish_howl_using_subcommand help; and __fish_seen_subcommand_from generate" -f -a "man" -d 'The man page (roff) on stdout, e.g. `howl generate man > howl.1`'
