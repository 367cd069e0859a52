using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Compat;

/// <summary>
/// <c>conntrack</c> (conntrack-tools 1.4.7) on the host's connection table: <c>-L</c> with its filters, <c>-C</c>,
/// <c>-D</c>, <c>-F</c>, <c>-S</c> and <c>-E</c> (the events the packets traced since the last <c>-E</c> generated),
/// with the tool's output, messages and exit codes.
/// </summary>
public static class ConntrackCompat
{
    private const string Prefix = "conntrack v1.4.7 (conntrack-tools): ";

    private enum Command { None, List, Count, Delete, Flush, Stats, Events, Get }

    private sealed class Filter
    {
        public byte? Protocol;
        public IpFamily? Family;
        public UInt128? OrigSrc, OrigDst, ReplSrc, ReplDst;
        public ushort? OrigSport, OrigDport, ReplSport, ReplDport;
        public TcpCtState? State;
        public (uint Value, uint Mask)? Mark;
        public ConnStatus? Status;
        public bool SrcNat, DstNat, AnyNat;
        public UInt128? SrcNatIp, DstNatIp, AnyNatIp;

        public bool Matches(ConnEntry e)
        {
            if (Family is { } f && e.Family != f) return false;
            if (Protocol is { } p && e.Protocol != p) return false;
            if (OrigSrc is { } a && e.Original.Source != a) return false;
            if (OrigDst is { } b && e.Original.Destination != b) return false;
            if (ReplSrc is { } c && e.Reply.Source != c) return false;
            if (ReplDst is { } d && e.Reply.Destination != d) return false;
            if (OrigSport is { } sp && e.Original.SourcePort != sp) return false;
            if (OrigDport is { } dp && e.Original.DestinationPort != dp) return false;
            if (ReplSport is { } rsp && e.Reply.SourcePort != rsp) return false;
            if (ReplDport is { } rdp && e.Reply.DestinationPort != rdp) return false;
            if (State is { } st && e.TcpState != st) return false;
            if (Mark is var (mv, mm) && (e.Mark & mm) != mv) return false;
            if (Status is { } s && (e.Status & s) != s) return false;
            bool snat = e.Has(ConnStatus.SrcNat), dnat = e.Has(ConnStatus.DstNat);
            if (SrcNat && (!snat || (SrcNatIp is { } sip && e.Reply.Destination != sip))) return false;
            if (DstNat && (!dnat || (DstNatIp is { } dip && e.Reply.Source != dip))) return false;
            if (AnyNat && !((snat && (AnyNatIp is not { } x || e.Reply.Destination == x)) || (dnat && (AnyNatIp is not { } y || e.Reply.Source == y)))) return false;
            return true;
        }
    }

    public static int Run(string[] argv, HostStore store, ToolIo io)
    {
        if (argv.Length < 2)
        {
            io.Out.Write(Help);
            return 0;
        }
        Command cmd = Command.None;
        string table = "conntrack";
        var filter = new Filter();
        string? output = null;
        bool protocolOptionsLoaded = false, unreplied = false, zero = false;
        var given = new List<string>();
        try
        {
            for (int i = 1; i < argv.Length; i++)
            {
                string a = argv[i];
                string Value()
                {
                    if (i + 1 >= argv.Length || argv[i + 1].StartsWith('-')) throw new ArgumentException($"option `{a}' requires an argument");
                    return argv[++i];
                }
                void SetCommand(Command c)
                {
                    if (cmd != Command.None) throw new ArgumentException("Invalid parameters");
                    cmd = c;
                    if (i + 1 < argv.Length && !argv[i + 1].StartsWith('-') && c is Command.List or Command.Delete or Command.Flush or Command.Count or Command.Events)
                    {
                        table = argv[++i];
                        if (table is not ("conntrack" or "expect" or "expectation" or "dying" or "unconfirmed")) throw new ArgumentException($"Bad parameter `{table}'");
                    }
                }
                switch (a)
                {
                    case "-L" or "--dump": SetCommand(Command.List); break;
                    case "-C" or "--count": SetCommand(Command.Count); break;
                    case "-D" or "--delete": SetCommand(Command.Delete); break;
                    case "-F" or "--flush": SetCommand(Command.Flush); break;
                    case "-S" or "--stats": SetCommand(Command.Stats); break;
                    case "-E" or "--event": SetCommand(Command.Events); break;
                    case "-G" or "--get": SetCommand(Command.Get); break;
                    case "-h" or "--help": io.Out.Write(Help); return 0;
                    case "-V" or "--version": io.Out.WriteLine("conntrack v1.4.7 (conntrack-tools)"); return 0;
                    case "-p" or "--proto" or "--protonum":
                        {
                            string p = Value();
                            filter.Protocol = ParseProtocol(p);
                            protocolOptionsLoaded = true;
                            given.Add("--protonum");
                            break;
                        }
                    case "-f" or "--family":
                        {
                            string f = Value();
                            filter.Family = f switch { "ipv4" => IpFamily.V4, "ipv6" => IpFamily.V6, _ => throw new ArgumentException($"`{f}' unsupported protocol") };
                            break;
                        }
                    case "-s" or "--src" or "--orig-src": filter.OrigSrc = Address(Value(), filter); given.Add("--orig-src"); break;
                    case "-d" or "--dst" or "--orig-dst": filter.OrigDst = Address(Value(), filter); given.Add("--orig-dst"); break;
                    case "-r" or "--reply-src": filter.ReplSrc = Address(Value(), filter); given.Add("--reply-src"); break;
                    case "-q" or "--reply-dst": filter.ReplDst = Address(Value(), filter); given.Add("--reply-dst"); break;
                    case "--sport" or "--orig-port-src" when protocolOptionsLoaded && Ported(filter): filter.OrigSport = Port(Value()); break;
                    case "--dport" or "--orig-port-dst" when protocolOptionsLoaded && Ported(filter): filter.OrigDport = Port(Value()); break;
                    case "--reply-port-src" when protocolOptionsLoaded && Ported(filter): filter.ReplSport = Port(Value()); break;
                    case "--reply-port-dst" when protocolOptionsLoaded && Ported(filter): filter.ReplDport = Port(Value()); break;
                    case "--state" when filter.Protocol == IpProtocol.Tcp:
                        {
                            string s = Value();
                            filter.State = TcpState(s) ?? throw new ArgumentException($"unknown TCP state `{s}'");
                            break;
                        }
                    case "-m" or "--mark":
                        {
                            string m = Value();
                            string[] parts = m.Split('/');
                            if (!TryNumber(parts[0], out uint v) || parts.Length > 2 || (parts.Length == 2 && !TryNumber(parts[1], out _)))
                                throw new ArgumentException($"Bad parameter `{m}'");
                            uint mask = parts.Length == 2 && TryNumber(parts[1], out uint mk) ? mk : uint.MaxValue;
                            filter.Mark = (v & mask, mask);
                            given.Add("--mark");
                            break;
                        }
                    case "-u" or "--status":
                        {
                            string s = Value();
                            ConnStatus st = ConnStatus.None;
                            foreach (string w in s.Split(','))
                            {
                                st |= w switch
                                {
                                    "ASSURED" => ConnStatus.Assured,
                                    "SEEN_REPLY" => ConnStatus.SeenReply,
                                    "FIXED_TIMEOUT" => ConnStatus.FixedTimeout,
                                    "EXPECTED" => ConnStatus.Expected,
                                    "UNSET" => ConnStatus.None,
                                    "UNREPLIED" => ConnStatus.None,
                                    _ => throw new ArgumentException($"Bad parameter `{w}'"),
                                };
                            }
                            filter.Status = s.Contains("UNREPLIED", StringComparison.Ordinal) ? null : st;
                            unreplied = s.Contains("UNREPLIED", StringComparison.Ordinal);
                            given.Add("--status");
                            break;
                        }
                    case "-n" or "--src-nat":
                        filter.SrcNat = true;
                        if (i + 1 < argv.Length && !argv[i + 1].StartsWith('-')) filter.SrcNatIp = Address(argv[++i], filter);
                        given.Add("--src-nat");
                        break;
                    case "-g" or "--dst-nat":
                        filter.DstNat = true;
                        if (i + 1 < argv.Length && !argv[i + 1].StartsWith('-')) filter.DstNatIp = Address(argv[++i], filter);
                        given.Add("--dst-nat");
                        break;
                    case "-j" or "--any-nat":
                        filter.AnyNat = true;
                        if (i + 1 < argv.Length && !argv[i + 1].StartsWith('-')) filter.AnyNatIp = Address(argv[++i], filter);
                        given.Add("--any-nat");
                        break;
                    case "-o" or "--output":
                        {
                            string o = Value();
                            foreach (string w in o.Split(','))
                            {
                                if (w is not ("extended" or "xml" or "timestamp" or "id" or "ktimestamp" or "labels" or "userspace" or "save"))
                                    throw new ArgumentException($"Bad parameter `{o}'");
                            }
                            output = o;
                            break;
                        }
                    case "-z" or "--zero": zero = true; given.Add("--zero"); break;
                    default:
                        throw new ArgumentException($"unknown option `{a}'");
                }
            }
        }
        catch (ArgumentException ex)
        {
            io.Err.WriteLine(Prefix + ex.Message);
            io.Err.WriteLine("Try `conntrack -h' or 'conntrack --help' for more information.");
            return 2;
        }
        if (cmd is Command.Count or Command.Flush or Command.Stats && given.Count > 0)
        {
            io.Err.WriteLine($"{Prefix}Illegal option `{given[0]}' with this command");
            io.Err.WriteLine("Try `conntrack -h' or 'conntrack --help' for more information.");
            return 2;
        }
        if (cmd == Command.None)
        {
            io.Err.WriteLine(Prefix + "no command specified");
            io.Err.WriteLine("Try `conntrack -h' or 'conntrack --help' for more information.");
            return 2;
        }
        bool expectTable = table is "expect" or "expectation";
        using HostLock hostLock = store.Lock(5);
        VirtualHost host = store.LoadNetwork();
        double now = host.Clock;
        ConntrackTable ct = ConntrackStore.Load(store.Directory);
        RuntimeState runtime = RuntimeState.Load(store);
        ConntrackEventLog log = runtime.Get(ConntrackEventLog.Key, () => new ConntrackEventLog());
        ct.Expire(now);
        bool dyingOrUnconfirmed = table is "dying" or "unconfirmed";
        IEnumerable<ConnEntry> Selected() => dyingOrUnconfirmed || expectTable
            ? [] : ct.Entries.Reverse().Where(e => filter.Matches(e) && (!unreplied || !e.Has(ConnStatus.SeenReply))).ToList();
        switch (cmd)
        {
            case Command.List:
            case Command.Get:
                {
                    List<ConnEntry> list = Selected().ToList();
                    if (io.Json) WriteJson(io.Out, list, now);
                    bool xml = !io.Json && output?.Split(',').Contains("xml") == true;
                    if (xml) io.Out.WriteLine("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<conntrack>");
                    if (!io.Json)
                    {
                        foreach (ConnEntry e in list) io.Out.WriteLine(xml ? Xml(e, now) : Line(e, now, output));
                    }
                    if (xml) io.Out.WriteLine("</conntrack>");
                    if (zero)
                    {
                        foreach (ConnEntry e in list)
                        {
                            if (e.Counters is not null) Array.Clear(e.Counters);
                        }
                        ConntrackStore.Save(store.Directory, ct, now);
                    }
                    io.Err.WriteLine(expectTable ? $"{Prefix}0 expectations have been shown." : $"{Prefix}{list.Count} flow entries have been shown.");
                    return 0;
                }
            case Command.Count:
                {
                    int count = expectTable || dyingOrUnconfirmed ? 0 : ct.Count;
                    if (io.Json)
                    {
                        using var json = new JsonLines(io.Out);
                        json.Begin().WriteNumber("count", count);
                        json.End();
                        return 0;
                    }
                    io.Out.WriteLine(count.ToString(CultureInfo.InvariantCulture));
                    return 0;
                }
            case Command.Delete:
                {
                    List<ConnEntry> list = Selected().ToList();
                    if (io.Json) WriteJson(io.Out, list, now);
                    foreach (ConnEntry e in list)
                    {
                        if (!io.Json) io.Out.WriteLine(Line(e, now, output));
                        ct.Remove(e);
                        log.Add("[DESTROY] " + EventBody(e, now) + " [USERSPACE] portid=0");
                    }
                    ConntrackStore.Save(store.Directory, ct, now);
                    runtime.Save(store);
                    io.Err.WriteLine($"{Prefix}{list.Count} flow entries have been deleted.");
                    return list.Count == 0 ? 1 : 0;
                }
            case Command.Flush:
                if (!expectTable)
                {
                    ct.Clear();
                    ConntrackStore.Save(store.Directory, ct, now);
                }
                io.Err.WriteLine(expectTable ? $"{Prefix}expectation table has been emptied." : $"{Prefix}connection tracking table has been emptied.");
                return 0;
            case Command.Stats:
                {
                    ConntrackStats s = runtime.Get(ConntrackStats.Key, () => new ConntrackStats());
                    if (io.Json)
                    {
                        // The same fields as the text line, one object per CPU (the virtual kernel has one).
                        using var json = new JsonLines(io.Out);
                        System.Text.Json.Utf8JsonWriter w = json.Begin();
                        w.WriteNumber("cpu", 0);
                        w.WriteNumber("found", 0);
                        w.WriteNumber("invalid", s.Invalid);
                        w.WriteNumber("insert", 0);
                        w.WriteNumber("insert_failed", 0);
                        w.WriteNumber("drop", s.Drop);
                        w.WriteNumber("early_drop", s.EarlyDrop);
                        w.WriteNumber("error", s.Error);
                        w.WriteNumber("search_restart", 0);
                        w.WriteNumber("clash_resolve", 0);
                        w.WriteNumber("chaintoolong", 0);
                        json.End();
                        return 0;
                    }
                    io.Out.WriteLine($"cpu=0   \tfound=0 invalid={s.Invalid} insert=0 insert_failed=0 drop={s.Drop} early_drop={s.EarlyDrop} error={s.Error} search_restart=0 clash_resolve=0 chaintoolong=0 ");
                    return 0;
                }
            default:
                {
                    // Events: what the packets traced since the last -E generated (the kernel delivers them as they happen).
                    int n = 0;
                    using var json = io.Json ? new JsonLines(io.Out) : null;
                    foreach (string e in log.Lines)
                    {
                        string body = e[(e.IndexOf(']', StringComparison.Ordinal) + 2)..];
                        if (!EventMatches(body, filter)) continue;
                        int close = e.IndexOf(']', StringComparison.Ordinal);
                        if (json is not null)
                        {
                            // {"event":"NEW","line":"tcp 6 120 SYN_SENT src=…"}: the event's type and the text after it.
                            System.Text.Json.Utf8JsonWriter w = json.Begin();
                            w.WriteString("event", e[1..close]);
                            w.WriteString("line", body);
                            json.End();
                        }
                        else
                        {
                            io.Out.WriteLine(e[..(close + 1)].PadLeft(9) + " " + body);
                        }
                        n++;
                    }
                    log.Lines.Clear();
                    runtime.Save(store);
                    io.Err.WriteLine($"{Prefix}{n} flow events have been shown.");
                    return 0;
                }
        }
    }

    /// <summary>
    /// <c>--json</c> with -L, -G or -D: one object per entry (docs/json.md, "conntrack"): <c>family</c>, the fields of
    /// <c>trace --json</c>'s <c>ct</c> (tuples, status, tcp_state, nat, mark, timeout, line), then <c>zone</c>,
    /// <c>helper</c>, <c>counters</c> (per direction with nf_conntrack_acct, else null) and <c>id</c> (as <c>-o id</c>).
    /// </summary>
    private static void WriteJson(TextWriter output, List<ConnEntry> list, double now)
    {
        using var json = new JsonLines(output);
        foreach (ConnEntry e in list)
        {
            System.Text.Json.Utf8JsonWriter w = json.Begin();
            w.WriteString("family", e.Family == IpFamily.V4 ? "ipv4" : "ipv6");
            Chainwalk.Tracing.ConnectionExplainer.WriteFields(w, e, now);
            w.WriteNumber("zone", e.Zone);
            JsonLines.StringOrNull(w, "helper", e.Helper is { Length: > 0 } h ? h : null);
            if (e.Counters is { Length: >= 2 } c)
            {
                w.WriteStartObject("counters");
                w.WriteStartObject("original");
                w.WriteNumber("packets", c[0].Packets);
                w.WriteNumber("bytes", c[0].Bytes);
                w.WriteEndObject();
                w.WriteStartObject("reply");
                w.WriteNumber("packets", c[1].Packets);
                w.WriteNumber("bytes", c[1].Bytes);
                w.WriteEndObject();
                w.WriteEndObject();
            }
            else
            {
                w.WriteNull("counters");
            }
            w.WriteNumber("id", Id(e));
            json.End();
        }
    }

    private static bool EventMatches(string body, Filter f)
    {
        if (f.Protocol is { } p && !body.StartsWith(ConntrackTable.ProtocolName(p) + " ", StringComparison.Ordinal)) return false;
        return true;
    }

    /// <summary>The -L line (with -o extended the family first, with -o id the entry's id last).</summary>
    public static string Line(ConnEntry e, double now, string? output)
    {
        string line = ConntrackTable.Format(e, now);
        if (output is null) return line;
        string[] o = output.Split(',');
        if (o.Contains("extended")) line = (e.Family == IpFamily.V4 ? "ipv4     2 " : "ipv6     10 ") + line;
        if (o.Contains("id")) line += " id=" + Id(e).ToString(CultureInfo.InvariantCulture);
        return line;
    }

    /// <summary>A stable id for an entry (the kernel's is a hash of the entry's address; any 32-bit number).</summary>
    private static uint Id(ConnEntry e)
    {
        uint h = 2166136261;
        foreach (char c in e.Original.ToString()) h = (h ^ c) * 16777619;
        return h;
    }

    /// <summary>The event form of an entry: the -L line without the trailing mark=0 and use=1.</summary>
    public static string EventBody(ConnEntry e, double now)
    {
        string line = ConntrackTable.Format(e, now);
        if (line.EndsWith(" use=1", StringComparison.Ordinal)) line = line[..^" use=1".Length];
        line = line.Replace(" mark=0", "", StringComparison.Ordinal);
        return line;
    }

    private static string Xml(ConnEntry e, double now)
    {
        var sb = new StringBuilder("<flow>");
        void Meta(string dir, ConnTuple t)
        {
            string l3 = e.Family == IpFamily.V4 ? "<layer3 protonum=\"2\" protoname=\"ipv4\">" : "<layer3 protonum=\"10\" protoname=\"ipv6\">";
            sb.Append("<meta direction=\"").Append(dir).Append("\">").Append(l3)
              .Append("<src>").Append(IpNet.FormatAddress(t.Source, t.Family)).Append("</src><dst>").Append(IpNet.FormatAddress(t.Destination, t.Family)).Append("</dst></layer3>")
              .Append("<layer4 protonum=\"").Append(t.Protocol.ToString(CultureInfo.InvariantCulture)).Append("\" protoname=\"").Append(ConntrackTable.ProtocolName(t.Protocol)).Append("\">");
            if (ConnTuple.HasPortTuple(t.Protocol))
                sb.Append("<sport>").Append(t.SourcePort.ToString(CultureInfo.InvariantCulture)).Append("</sport><dport>").Append(t.DestinationPort.ToString(CultureInfo.InvariantCulture)).Append("</dport>");
            sb.Append("</layer4></meta>");
        }
        Meta("original", e.Original);
        Meta("reply", e.Reply);
        sb.Append("<meta direction=\"independent\">");
        if (e.TcpState is { } tcp) sb.Append("<state>").Append(TcpTracker.Name(tcp)).Append("</state>");
        sb.Append("<timeout>").Append(e.SecondsLeft(now).ToString(CultureInfo.InvariantCulture)).Append("</timeout><mark>")
          .Append(e.Mark.ToString(CultureInfo.InvariantCulture)).Append("</mark><use>1</use><id>").Append(Id(e).ToString(CultureInfo.InvariantCulture)).Append("</id>");
        if (e.Has(ConnStatus.Assured)) sb.Append("<assured/>");
        if (!e.Has(ConnStatus.SeenReply)) sb.Append("<unreplied/>");
        sb.Append("</meta></flow>");
        return sb.ToString();
    }

    private static bool Ported(Filter f) => f.Protocol is { } p && ConnTuple.HasPortTuple(p);

    private static byte ParseProtocol(string p)
    {
        if (byte.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out byte n)) return n;
        return p switch
        {
            "tcp" => IpProtocol.Tcp,
            "udp" => IpProtocol.Udp,
            "udplite" => IpProtocol.UdpLite,
            "icmp" => IpProtocol.Icmp,
            "icmpv6" => IpProtocol.Icmpv6,
            "sctp" => IpProtocol.Sctp,
            "gre" => IpProtocol.Gre,
            "dccp" => 33,
            _ => throw new ArgumentException($"`{p}' unsupported protocol"),
        };
    }

    private static UInt128 Address(string text, Filter f)
    {
        // conntrack 1.4.7 compares the address part only (a /mask is not applied to the listing).
        string addr = text.Split('/')[0];
        if (IpNet.TryParseStrict(addr, IpFamily.V4, out UInt128 v4))
        {
            f.Family ??= IpFamily.V4;
            return v4;
        }
        if (IpNet.TryParseStrict(addr, IpFamily.V6, out UInt128 v6))
        {
            f.Family ??= IpFamily.V6;
            return v6;
        }
        throw new ArgumentException($"Invalid IP address `{text}'");
    }

    private static ushort Port(string text) =>
        ushort.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ushort p) ? p : throw new ArgumentException($"Bad parameter `{text}'");

    private static bool TryNumber(string s, out uint v) =>
        s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? uint.TryParse(s.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out v)
            : uint.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out v);

    private static TcpCtState? TcpState(string s)
    {
        foreach (TcpCtState st in Enum.GetValues<TcpCtState>())
        {
            if (TcpTracker.Name(st) == s) return st;
        }
        return null;
    }

    // ------------------------------------------------------------------ events and statistics kept with the host

    /// <summary>Conntrack events waiting for the next <c>conntrack -E</c> (the runtime state keeps them).</summary>
    public sealed class ConntrackEventLog : IRuntimeState
    {
        public const string Key = "conntrack:events";
        public const int Max = 10000;

        private readonly List<string> _lines = new();

        /// <summary>Events not written out yet: a line, or how to make it (only the last <see cref="Max"/> are ever made).</summary>
        private readonly Queue<object> _pending = new();

        /// <summary>The last <see cref="Max"/> events, oldest first.</summary>
        public List<string> Lines
        {
            get
            {
                if (_pending.Count > 0)
                {
                    foreach (object p in _pending) _lines.Add(p as string ?? ((Func<string>)p)());
                    _pending.Clear();
                    if (_lines.Count > Max) _lines.RemoveRange(0, _lines.Count - Max);
                }
                return _lines;
            }
        }

        public void Add(string line) => Enqueue(line);

        /// <summary>
        /// An event whose line is made only if it is still among the last <see cref="Max"/> when the log is read: a replay
        /// of a million packets makes hundreds of thousands of events, of which the log keeps ten thousand.
        /// </summary>
        public void Add(Func<string> line) => Enqueue(line);

        private void Enqueue(object line)
        {
            _pending.Enqueue(line);
            if (_pending.Count > Max) _pending.Dequeue();
        }

        public JsonNode? Save() => Lines.Count == 0 ? null : new JsonArray(Lines.Select(l => (JsonNode)JsonValue.Create(l)!).ToArray());

        public void Load(JsonNode node)
        {
            Lines.Clear();
            if (node is JsonArray a) Lines.AddRange(a.Select(x => x!.GetValue<string>()));
        }
    }

    /// <summary>The counters <c>conntrack -S</c> shows that the virtual kernel keeps (one CPU).</summary>
    public sealed class ConntrackStats : IRuntimeState
    {
        public const string Key = "conntrack:stats";

        public long Invalid { get; set; }
        public long Drop { get; set; }
        public long EarlyDrop { get; set; }
        public long Error { get; set; }

        public JsonNode? Save() => Invalid == 0 && Drop == 0 && EarlyDrop == 0 && Error == 0 ? null
            : new JsonObject { ["invalid"] = Invalid, ["drop"] = Drop, ["early_drop"] = EarlyDrop, ["error"] = Error };

        public void Load(JsonNode node)
        {
            Invalid = node["invalid"]?.GetValue<long>() ?? 0;
            Drop = node["drop"]?.GetValue<long>() ?? 0;
            EarlyDrop = node["early_drop"]?.GetValue<long>() ?? 0;
            Error = node["error"]?.GetValue<long>() ?? 0;
        }
    }

    public const string Help = """
Command line interface for the connection tracking system. Version 1.4.7
Usage: conntrack [commands] [options]

Commands:
  -L [table] [options]		List conntrack or expectation table
  -G [table] parameters		Get conntrack or expectation
  -D [table] parameters		Delete conntrack or expectation
  -I [table] parameters		Create a conntrack or expectation
  -U [table] parameters		Update a conntrack
  -E [table] [options]		Show events
  -F [table]			Flush table
  -C [table]			Show counter
  -S				Show statistics

Tables: conntrack, expect, dying, unconfirmed

""";
}
