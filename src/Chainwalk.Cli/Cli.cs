using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Net;

namespace Chainwalk.Cli;

/// <summary>
/// The chainwalk command: global options (--host DIR), then a verb. Compat verbs behave like the Linux
/// tools of the same name on the virtual host; a shim named like a tool runs that verb directly.
/// </summary>
internal static class Cli
{
    public static int Run(string[] args)
    {
        // One command, then exit: a large rule set is loaded without collections meanwhile (see ShortLivedProcess).
        ShortLivedProcess.Enabled = true;
        string? hostDir = null;
        bool json = false;
        int i = 0;
        // A shim runs us as "chainwalk-shim TOOL args…" via CHAINWALK_TOOL; plain runs take a verb.
        while (i < args.Length && args[i].StartsWith("--", StringComparison.Ordinal))
        {
            if (args[i] == "--host" && i + 1 < args.Length)
            {
                hostDir = args[i + 1];
                i += 2;
                continue;
            }
            if (args[i].StartsWith("--host=", StringComparison.Ordinal))
            {
                hostDir = args[i]["--host=".Length..];
                i++;
                continue;
            }
            if (args[i] == "--json")
            {
                // JSON Lines from any verb (docs/json.md); before the verb, so the compat tools' own arguments stay theirs.
                json = true;
                i++;
                continue;
            }
            if (args[i] is "--help" or "--version") break;
            break;
        }
        if (i >= args.Length)
        {
            Console.Error.Write(Usage);
            return 2;
        }
        string verb = args[i];
        string[] rest = args[(i + 1)..];
        var store = new HostStore(HostStore.ResolveDirectory(hostDir));
        ToolIo io = json ? new ToolIo { In = new StdinReader(), Out = Console.Out, Err = Console.Error, Json = true } : ToolIo.Console;
        // chainwalk's own verbs take --json after the verb too; the global option is passed on as that.
        if (json && verb is "trace" or "replay" or "demo" or "clock" or "graph" or "extensions" or "env" && !rest.Contains("--json")) rest = [.. rest, "--json"];
        string[] Argv(string name) => [name, .. rest];
        try
        {
            return verb switch
            {
                "iptables" => IptablesCompat.Run(IpFamily.V4, Argv("iptables"), store, io),
                "ip6tables" => IptablesCompat.Run(IpFamily.V6, Argv("ip6tables"), store, io),
                "iptables-save" => IptablesCompat.Save(IpFamily.V4, Argv("iptables-save"), store, io),
                "ip6tables-save" => IptablesCompat.Save(IpFamily.V6, Argv("ip6tables-save"), store, io),
                "iptables-restore" => IptablesCompat.Restore(IpFamily.V4, Argv("iptables-restore"), store, io),
                "ip6tables-restore" => IptablesCompat.Restore(IpFamily.V6, Argv("ip6tables-restore"), store, io),
                "ip" => IpCompat.Run(Argv("ip"), store, io),
                "sysctl" => SysctlCompat.Run(Argv("sysctl"), store, io),
                "ipset" => IpsetCompat.Run(Argv("ipset"), store, io),
                "nfacct" => NfacctCompat.Run(Argv("nfacct"), store, io),
                "conntrack" => ConntrackCompat.Run(Argv("conntrack"), store, io),
                "dmesg" => KernelLogCompat.Dmesg(Argv("dmesg"), store, io),
                "journalctl" => KernelLogCompat.Journalctl(Argv("journalctl"), store, io),
                "trace" when rest.Length >= 2 && rest[0] == "--example" => Chainwalk.Tracing.DemoCommand.Run(rest[1..], io),
                "trace" => Chainwalk.Tracing.TraceCommand.Run(rest, store, io),
                "demo" => Chainwalk.Tracing.DemoCommand.Run(rest, io),
                "clock" => Chainwalk.Tracing.ClockCommand.Run(rest, store, io),
                "graph" => Chainwalk.Pictures.ChainGraph.Run(rest, store, io),
                "replay" => Chainwalk.Tracing.ReplayCommand.Run(rest, store, io, progress: !Console.IsErrorRedirected),
                "env" => ShellEnv.PrintEnv(rest, store, io),
                "extensions" => ListExtensions(rest, io),
                "shell" => ShellEnv.RunShell(rest, store, io),
                "--help" or "help" or "-h" => PrintUsage(),
                "--version" or "version" => PrintVersion(json),
                _ => Unknown(verb),
            };
        }
        catch (InvalidDataException ex)
        {
            Console.Error.WriteLine($"chainwalk: host state in {store.Directory} is damaged: {ex.Message}");
            return 1;
        }
    }

    private const string Usage = """
Usage: chainwalk [--host DIR] [--json] VERB [ARGS…]

Compat verbs (same arguments, output and exit codes as the Linux tools, on the virtual host):
  iptables, ip6tables, iptables-save, ip6tables-save, iptables-restore, ip6tables-restore,
  ip, sysctl, ipset, nfacct, conntrack, dmesg, journalctl (the kernel log: LOG/TRACE lines of traced packets)
Chainwalk verbs:
  demo     built-in example hosts (lab1, nat-gateway, kubernetes) with packets traced; needs no set-up
  clock    show or advance the host's clock (timeouts, limits, recent lists run on it)
  graph    the chain graph of a table as SVG, Graphviz DOT or JSON Lines (-t TABLE, --dot, --json, -o FILE)
  replay   run a pcap/pcapng capture through the host (summary, --out capture, --json, --explain N)
  trace    send a packet (or a batch) through the host's netfilter and explain what happens
  env      print shell lines that put iptables/ip/sysctl shims for this host first on PATH
  extensions  list the xtables matches and targets Chainwalk knows
  shell    start a shell with those shims

The host is --host DIR, else $CHAINWALK_HOST, else ~/.chainwalk/host.
--json (before the verb): JSON Lines instead of text from any verb that prints results, compat verbs included
(chainwalk --json iptables -S, chainwalk --json conntrack -L); the fields are in docs/json.md.

""";

    /// <summary>
    /// Lists the xtables extensions Chainwalk knows: name, match/target, families, kernel support here; with --json one
    /// <c>{"name","kind","families","supported"}</c> object per extension (docs/json.md).
    /// </summary>
    private static int ListExtensions(string[] args, ToolIo io)
    {
        bool json = false;
        foreach (string a in args)
        {
            if (a == "--json") json = true;
            else
            {
                io.Err.WriteLine($"chainwalk extensions: unknown option \"{a}\"");
                return 2;
            }
        }
        using var lines = new Chainwalk.Syntax.JsonLines(io.Out);
        foreach (Chainwalk.Extensions.XtExtension e in Chainwalk.Extensions.ExtensionRegistry.All)
        {
            string fam = e.Families switch
            {
                Chainwalk.Extensions.FamilyMask.V4 => "ipv4",
                Chainwalk.Extensions.FamilyMask.V6 => "ipv6",
                _ => "ipv4,ipv6",
            };
            string kind = e.Kind == Chainwalk.Extensions.ExtensionKind.Match ? "match" : "target";
            if (json)
            {
                System.Text.Json.Utf8JsonWriter w = lines.Begin();
                w.WriteString("name", e.Name);
                w.WriteString("kind", kind);
                w.WriteStartArray("families");
                foreach (string f in fam.Split(',')) w.WriteStringValue(f);
                w.WriteEndArray();
                w.WriteBoolean("supported", e.KernelSupported);
                lines.End();
                continue;
            }
            io.Out.WriteLine($"{e.Name}\t{kind}\t{fam}\t{(e.KernelSupported ? "supported" : "refused: no kernel module")}");
        }
        return 0;
    }

    private static int PrintUsage()
    {
        Console.Out.Write(Usage);
        return 0;
    }

    private static int PrintVersion(bool json)
    {
        if (json)
        {
            // {"chainwalk","iptables"}: the two versions the text line names.
            using var lines = new Chainwalk.Syntax.JsonLines(Console.Out);
            System.Text.Json.Utf8JsonWriter w = lines.Begin();
            w.WriteString("chainwalk", "0.1");
            w.WriteString("iptables", Chainwalk.Syntax.SaveWriter.Version);
            lines.End();
            return 0;
        }
        Console.Out.WriteLine($"chainwalk 0.1 (iptables v{Chainwalk.Syntax.SaveWriter.Version} compatible)");
        return 0;
    }

    private static int Unknown(string verb)
    {
        Console.Error.WriteLine($"chainwalk: unknown verb '{verb}'");
        Console.Error.Write(Usage);
        return 2;
    }
}
