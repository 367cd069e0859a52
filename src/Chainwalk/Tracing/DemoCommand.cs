using Chainwalk.Compat;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;

namespace Chainwalk.Tracing;

/// <summary>
/// <c>chainwalk demo [NAME]</c>: built-in example hosts (the guide's Lab 1 server, the NAT gateway of Labs
/// 2–3, a Kubernetes node) set up in a throw-away host directory, each with a few packets traced and explained.
/// Needs nothing on the machine. A demo file has a [network] section (ip / sysctl / nfacct commands), a
/// [rules] section naming an iptables-restore file, and [packets] in trace --batch lines with a "comment".
/// </summary>
public static class DemoCommand
{
    public static IReadOnlyList<string> Names { get; } = ["lab1", "nat-gateway", "kubernetes"];

    public static string Read(string name)
    {
        using Stream? s = typeof(DemoCommand).Assembly.GetManifestResourceStream("examples/" + name);
        if (s is null) throw new FileNotFoundException("no built-in example " + name);
        using var reader = new StreamReader(s);
        return reader.ReadToEnd();
    }

    public static int Run(string[] args, ToolIo io)
    {
        bool json = false, list = false;
        var names = new List<string>();
        foreach (string a in args)
        {
            if (a == "--json") json = true;
            else if (a == "--list") list = true;
            else if (Names.Contains(a)) names.Add(a);
            else
            {
                io.Err.WriteLine($"chainwalk demo: no example named \"{a}\"; there are: {string.Join(", ", Names)}");
                return 2;
            }
        }
        if (list)
        {
            using var lines = new Chainwalk.Syntax.JsonLines(io.Out);
            foreach (string n in Names)
            {
                if (!json)
                {
                    io.Out.WriteLine($"{n,-12} {Title(n)}");
                    continue;
                }
                System.Text.Json.Utf8JsonWriter w = lines.Begin();
                w.WriteString("demo", n);
                w.WriteString("title", Title(n));
                lines.End();
            }
            return 0;
        }
        if (names.Count == 0) names.AddRange(Names);
        bool first = true;
        foreach (string name in names)
        {
            if (!first && !json) io.Out.WriteLine();
            first = false;
            int rc = RunOne(name, io, json);
            if (rc != 0) return rc;
        }
        return 0;
    }

    /// <summary>The demo's first comment line.</summary>
    public static string Title(string name)
    {
        string first = Read(name + ".demo").Split('\n')[0];
        return first.TrimStart('#', ' ');
    }

    /// <summary>Builds the example host in a temporary directory, runs its packets, removes the directory.</summary>
    public static int RunOne(string name, ToolIo io, bool json)
    {
        string dir = Path.Combine(Path.GetTempPath(), "chainwalk-demo-" + Guid.NewGuid().ToString("N")[..12]);
        try
        {
            var store = new HostStore(dir);
            Directory.CreateDirectory(dir);
            var quiet = new ToolIo { In = TextReader.Null, Out = TextWriter.Null, Err = io.Err };
            string text = Read(name + ".demo");
            string section = "";
            var packets = new List<string>();
            if (!json)
            {
                io.Out.WriteLine("=== demo " + name + ": " + Title(name));
            }
            string? rulesFile = null;
            foreach (string raw in text.Split('\n'))
            {
                string line = raw.TrimEnd('\r');
                if (line.Length == 0 || line.StartsWith('#')) continue;
                if (line.StartsWith('['))
                {
                    int close = line.IndexOf(']', StringComparison.Ordinal);
                    section = line[1..close];
                    if (section == "rules")
                    {
                        string file = line[(close + 1)..].Trim();
                        string rules = Read(file);
                        var rio = new ToolIo { In = new StringReader(rules), Out = TextWriter.Null, Err = io.Err };
                        if (IptablesCompat.Restore(IpFamily.V4, ["iptables-restore"], store, rio) != 0) return 1;
                        rulesFile = "examples/" + (file.StartsWith("kube", StringComparison.Ordinal) ? "demos/" : "") + file;
                        if (!json) io.Out.WriteLine("rules: " + rulesFile);
                    }
                    continue;
                }
                if (section == "network")
                {
                    string[] argv = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    int rc = argv[0] switch
                    {
                        "ip" => IpCompat.Run(argv, store, quiet),
                        "sysctl" => SysctlCompat.Run(argv, store, quiet),
                        "nfacct" => NfacctCompat.Run(argv, store, quiet),
                        _ => throw new InvalidDataException("demo " + name + ": unknown command " + argv[0]),
                    };
                    if (rc != 0) return rc;
                }
                else if (section == "packets")
                {
                    packets.Add(line);
                }
            }
            VirtualHost host = store.Load();
            Netfilter nf = EngineStore.Open(store, host);
            nf.RecordTrace = true;
            if (json)
            {
                // {"demo","title","rules","packets"} before the demo's packets, as the text's "=== demo" header:
                // several demos in one stream stay apart (each numbers its packets from 1).
                using var header = new Chainwalk.Syntax.JsonLines(io.Out);
                System.Text.Json.Utf8JsonWriter w = header.Begin();
                w.WriteString("demo", name);
                w.WriteString("title", Title(name));
                Chainwalk.Syntax.JsonLines.StringOrNull(w, "rules", rulesFile);
                w.WriteNumber("packets", packets.Count);
                header.End();
            }
            int n = 0;
            foreach (string p in packets)
            {
                n++;
                PacketSpec spec = TraceCommand.BatchLine(p);
                PacketResult r = nf.Process(spec.Build(host));
                if (json)
                {
                    io.Out.WriteLine(TraceJson.Render(r, n, nf.State.Now));
                    continue;
                }
                io.Out.WriteLine();
                if (spec.Comment is not null) io.Out.WriteLine("# " + spec.Comment);
                io.Out.Write(ExplainTree.Render(r, n));
            }
            return 0;
        }
        finally
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
                // A temporary directory left behind is harmless.
            }
        }
    }
}
