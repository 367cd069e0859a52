using System.Text;
using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Engine.Compiled;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The established flow path (<see cref="Netfilter.FlowPath"/>: a table walk of an ESTABLISHED packet remembered per
/// connection direction and replayed) against the slow path: the same packet sequences (NAT both ways, data of varying
/// length, teardown, INVALID packets, rule edits, flushes, policies, renames, zeroing, host and sysctl changes between
/// packets, rule sets with volatile matches and non-pure targets mixed in) through two hosts, one with the flow path and
/// one without, must give the same result for every packet and the same counters and conntrack table after every step.
/// </summary>
public class FlowPathTests
{
    /// <summary>The NAT gateway: LAN eth1 10.0.1.0/24 masqueraded out of eth0, a port forward to 10.0.1.20:80.</summary>
    private const string GatewayRules = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        :FWD-IN - [0:0]
        :OTHER - [0:0]
        -A FORWARD -m conntrack --ctstate INVALID -j DROP
        -A FORWARD -m comment --comment "lan side" -j FWD-IN
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -i eth1 -j ACCEPT
        -A FORWARD -i eth0 -d 10.0.1.20/32 -p tcp -m tcp --dport 80 -j ACCEPT
        -A FWD-IN -i eth1 -s 10.0.1.99/32 -j DROP
        -A FWD-IN -m mark --mark 0x1/0x1 -j RETURN
        -A FWD-IN -p tcp -m multiport --dports 22,23 -j DROP
        -A OTHER -p tcp -m tcp --dport 80 -j ACCEPT
        COMMIT
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A PREROUTING -d 198.51.100.2/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.1.20:80
        -A POSTROUTING -o eth0 -j MASQUERADE
        COMMIT
        *mangle
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A PREROUTING -i eth0 -p tcp -m tcp --sport 80 -j ACCEPT
        -A POSTROUTING -o eth0 -m conntrack --ctstate ESTABLISHED
        COMMIT
        """;

    private static readonly string[] Gateway = Chainwalk.Tests.Nat.NatRig.Gateway4;

    /// <summary>One host with the flow path, one without; every step is done to both.</summary>
    private sealed class Pair
    {
        public Pair(string rules, bool compiled, string[]? network = null, string rules6 = "")
        {
            Fast = new Side(rules, compiled, flowPath: true, network, rules6);
            Slow = new Side(rules, compiled, flowPath: false, network, rules6);
        }

        public Side Fast { get; }

        public Side Slow { get; }

        public double Now { get; set; } = 1000;

        public readonly List<string> Steps = new();

        /// <summary>Sends the packet to both; their results must be the same. Returns the slow side's result.</summary>
        public PacketResult Send(string iface, byte[] bytes)
        {
            Now += 0.25;
            PacketResult f = Fast.Nf.Process(EngineHost.In(iface, (byte[])bytes.Clone(), Now));
            PacketResult s = Slow.Nf.Process(EngineHost.In(iface, (byte[])bytes.Clone(), Now));
            Steps.Add("packet on " + iface + ": " + Describe(s));
            Describe(f).ShouldBe(Describe(s), string.Join('\n', Steps));
            return s;
        }

        /// <summary>A packet a local process sends, to both; their results must be the same.</summary>
        public PacketResult SendLocal(byte[] bytes)
        {
            Now += 0.25;
            PacketResult f = Fast.Nf.Process(new PacketInput { Bytes = (byte[])bytes.Clone(), At = Now });
            PacketResult s = Slow.Nf.Process(new PacketInput { Bytes = (byte[])bytes.Clone(), At = Now });
            Steps.Add("local packet: " + Describe(s));
            Describe(f).ShouldBe(Describe(s), string.Join('\n', Steps));
            return s;
        }

        public void Edit(string what, Action<VirtualHost> edit)
        {
            Steps.Add(what);
            // An edit iptables refuses (a chain that is not there, -o at PREROUTING …) is refused on both sides alike.
            string? f = Try(edit, Fast.Host), s = Try(edit, Slow.Host);
            f.ShouldBe(s, string.Join('\n', Steps));
            Fast.Refresh();
            Slow.Refresh();
        }

        private static string? Try(Action<VirtualHost> edit, VirtualHost host)
        {
            try
            {
                edit(host);
                return null;
            }
            catch (Chainwalk.Syntax.XtablesException ex)
            {
                return ex.Message;
            }
        }

        /// <summary>The counters of every table and the conntrack table, the same on both sides.</summary>
        public void Same()
        {
            string history = string.Join('\n', Steps);
            EngineHost.Counters(Fast.Host).ShouldBe(EngineHost.Counters(Slow.Host), history);
            EngineHost.Counters(Fast.Host, IpFamily.V6).ShouldBe(EngineHost.Counters(Slow.Host, IpFamily.V6), history);
            ConntrackStore.Format(Fast.Ct.Table, Now).ShouldBe(ConntrackStore.Format(Slow.Ct.Table, Now), history);
        }
    }

    private sealed class Side
    {
        private readonly bool _compiled;

        public Side(string rules, bool compiled, bool flowPath, string[]? network = null, string rules6 = "")
        {
            _compiled = compiled;
            Host = EngineHost.Create(rules, rules6, network ?? Gateway);
            Nf = new Netfilter(Host) { FlowPath = flowPath };
            Ct = ConntrackLoader.Enable(Nf) ?? throw new InvalidOperationException("conntrack not loaded");
            Refresh();
        }

        public VirtualHost Host { get; }

        public Netfilter Nf { get; }

        public ConntrackHooks Ct { get; }

        /// <summary>A compiled form of the rules as they are now (as the CLI builds one per command), when asked.</summary>
        public void Refresh()
        {
            if (_compiled) Nf.Compiled = CompiledRules.Build(Host.V4);
        }
    }

    private static string Describe(PacketResult r)
    {
        var sb = new StringBuilder();
        sb.Append(string.Join(',', r.Fate)).Append(" ct=").Append(r.CtState).Append(" err=").Append(r.Error).Append(" trace=").Append(r.Trace?.Count);
        foreach (var o in r.Outputs) sb.Append(" out ").Append(o.Interface).Append(' ').Append(Convert.ToHexString(o.Bytes));
        foreach (string l in r.Logs) sb.Append(" log ").Append(l);
        return sb.ToString();
    }

    /// <summary>A TCP connection from a LAN client through MASQUERADE (or from outside to the port forward) and its packets.</summary>
    private sealed class Flow(Pair pair, int n, bool inbound)
    {
        private uint _cseq = 1000, _sseq = 5000;
        private ConnTuple _reply;

        private string ClientIf => inbound ? "eth0" : "eth1";

        private string ServerIf => inbound ? "eth1" : "eth0";

        private byte[] Client(TcpFlags flags, int payload, uint? seq = null, byte ttl = 64, bool df = false, uint? ack = null) =>
            (inbound ? PacketBuilder.Ipv4("203.0.113." + (10 + n), "198.51.100.2") : PacketBuilder.Ipv4("10.0.1." + (10 + n), "93.184.216.34"))
                .Ttl(ttl).DontFragment(df)
                .Tcp((ushort)(40000 + n), (ushort)(inbound ? 8080 : 80), flags, seq: seq ?? _cseq, ack: flags.HasFlag(TcpFlags.Ack) ? ack ?? _sseq : 0)
                .PayloadLength(payload).Build();

        private byte[] Server(TcpFlags flags, int payload, uint? seq = null, byte ttl = 64, bool df = false, uint? ack = null) =>
            PacketBuilder.Ipv4((uint)_reply.Source, (uint)_reply.Destination).Ttl(ttl).DontFragment(df)
                .Tcp(_reply.SourcePort, _reply.DestinationPort, flags, seq: seq ?? _sseq, ack: ack ?? _cseq).PayloadLength(payload).Build();

        /// <summary>
        /// One segment from the client (or the server), <paramref name="seqOffset"/> from the next expected sequence number
        /// and <paramref name="ackOffset"/> from the other side's; the sequence moves on by the payload only when sent in order.
        /// </summary>
        public PacketResult Segment(bool fromClient, TcpFlags flags, int payload, byte ttl = 64, bool df = false, int seqOffset = 0, int ackOffset = 0)
        {
            PacketResult r = fromClient
                ? pair.Send(ClientIf, Client(flags, payload, (uint)(_cseq + seqOffset), ttl, df, (uint)(_sseq + ackOffset)))
                : pair.Send(ServerIf, Server(flags, payload, (uint)(_sseq + seqOffset), ttl, df, (uint)(_cseq + ackOffset)));
            if (seqOffset == 0 && r.Fate.Count > 0 && !r.Fate[0].StartsWith("dropped", StringComparison.Ordinal))
            {
                uint advance = (uint)payload + (flags.HasFlag(TcpFlags.Fin) || flags.HasFlag(TcpFlags.Syn) ? 1u : 0u);
                if (fromClient) _cseq += advance;
                else _sseq += advance;
            }
            return r;
        }

        public void Open()
        {
            PacketResult syn = pair.Send(ClientIf, Client(TcpFlags.Syn, 0));
            _cseq++;
            if (syn.Connection is not ConnEntry ct) return;
            _reply = ct.Reply;
            pair.Send(ServerIf, Server(TcpFlags.Syn | TcpFlags.Ack, 0));
            _sseq++;
            pair.Send(ClientIf, Client(TcpFlags.Ack, 0));
        }

        public void Data(Random rnd)
        {
            int len = rnd.Next(0, 3) == 0 ? 0 : rnd.Next(1, 200);
            if (rnd.Next(2) == 0)
            {
                pair.Send(ClientIf, Client(TcpFlags.Ack | TcpFlags.Psh, len));
                _cseq += (uint)len;
            }
            else if (_reply.Family == IpFamily.V4)
            {
                pair.Send(ServerIf, Server(TcpFlags.Ack | TcpFlags.Psh, len));
                _sseq += (uint)len;
            }
        }

        /// <summary>One data segment each way, the client's first.</summary>
        public void Both(int len)
        {
            pair.Send(ClientIf, Client(TcpFlags.Ack | TcpFlags.Psh, len));
            _cseq += (uint)len;
            pair.Send(ServerIf, Server(TcpFlags.Ack | TcpFlags.Psh, len));
            _sseq += (uint)len;
        }

        /// <summary>A segment far outside the window: conntrack calls it INVALID.</summary>
        public void Invalid() => pair.Send(ClientIf, Client(TcpFlags.Ack, 10, seq: _cseq + 0x4000_0000));

        public void Close()
        {
            pair.Send(ClientIf, Client(TcpFlags.Fin | TcpFlags.Ack, 0));
            _cseq++;
            if (_reply.Family == IpFamily.V4)
            {
                pair.Send(ServerIf, Server(TcpFlags.Fin | TcpFlags.Ack, 0));
                _sseq++;
            }
            pair.Send(ClientIf, Client(TcpFlags.Ack, 0));
        }
    }

    private static Rule ParseRule(string table, string chain, string text) =>
        EngineHost.Rules(IpFamily.V4, "*" + table + "\n:FWD-IN - [0:0]\n:OTHER - [0:0]\n:RENAMED - [0:0]\n-A " + chain + text + "\nCOMMIT\n").Find(table)!.Find(chain)!.Rules[0];

    /// <summary>Conditions: flow-stable ones and volatile ones (flags, length, TTL, rates, random, connbytes, status).</summary>
    private static readonly string[] Conditions =
    [
        "", " -i eth1", " -o eth0", " -s 10.0.1.11/32", " -d 10.0.1.20/32", " -p tcp -m tcp --dport 80", " -p tcp -m tcp --sport 80",
        " -m conntrack --ctstate ESTABLISHED", " -m conntrack --ctstate ESTABLISHED --ctdir REPLY", " -m state --state ESTABLISHED",
        " -m mark --mark 0x1/0x1", " -p tcp -m multiport --ports 80,8080", " -m addrtype --dst-type LOCAL", " -m conntrack --ctstate DNAT",
        " -m iprange --src-range 10.0.1.10-10.0.1.12",
        " -p tcp -m tcp --tcp-flags FIN FIN", " -p tcp -m tcp --syn", " -m length --length 0:80", " -m ttl --ttl-gt 63",
        " -m limit --limit 3/sec --limit-burst 2", " -m statistic --mode nth --every 3 --packet 0", " -m connbytes --connbytes 0:400 --connbytes-dir both --connbytes-mode bytes",
        " -m conntrack --ctstatus ASSURED", " -m tos --tos 0x10", " -p tcp -m tcp --tcp-option 2",
    ];

    private static readonly string[] Targets =
    [
        " -j ACCEPT", " -j ACCEPT", " -j DROP", " -j RETURN", "", " -j FWD-IN", " -g OTHER", " -j MARK --set-mark 0x1",
        " -j LOG --log-prefix fp:", " -j CONNMARK --set-mark 0x2", " -j REJECT",
    ];

    /// <summary>One random change to both hosts: a rule edit, flush, policy, rename, zeroing, or a host or sysctl change.</summary>
    private static void RandomChange(Pair pair, Random rnd, ref bool renamed)
    {
        string cond = Conditions[rnd.Next(Conditions.Length)];
        string target = Targets[rnd.Next(Targets.Length)];
        string table = rnd.Next(4) == 0 ? "mangle" : "filter";
        string chain = table == "mangle" ? (rnd.Next(2) == 0 ? "PREROUTING" : "FORWARD") : (rnd.Next(3) == 0 ? "FWD-IN" : "FORWARD");
        if (table == "mangle" && target is " -j FWD-IN" or " -g OTHER" or " -j REJECT") target = " -j ACCEPT";
        if (table == "filter" && chain == "FWD-IN" && target == " -j FWD-IN") target = " -j RETURN";
        if (renamed && target == " -g OTHER") target = " -g RENAMED";
        string edit = "-A " + chain + cond + target;
        switch (rnd.Next(12))
        {
            case 0:
            case 1:
                {
                    int pos = rnd.Next(5);
                    pair.Edit("-I " + table + " " + pos + " " + edit, h =>
                    {
                        if (h.V4.Find(table)!.Find(chain) is not { } c) return;
                        new RulesetEditor(h.V4).Insert(table, chain, Math.Min(pos, c.Rules.Count) + 1, [ParseRule(table, chain, cond + target)]);
                    });
                    return;
                }
            case 2:
                pair.Edit("-A " + table + " " + edit, h =>
                {
                    if (h.V4.Find(table)!.Find(chain) is null) return;
                    new RulesetEditor(h.V4).Append(table, chain, [ParseRule(table, chain, cond + target)]);
                });
                return;
            case 3:
                {
                    int at = rnd.Next(8);
                    pair.Edit("-D/-R " + table + " " + chain + " " + at + edit, h =>
                    {
                        if (h.V4.Find(table)!.Find(chain) is not { } c || c.Rules.Count == 0) return;
                        int k = at % c.Rules.Count + 1;
                        if (at % 2 == 0) new RulesetEditor(h.V4).DeleteNumber(table, chain, k);
                        else new RulesetEditor(h.V4).Replace(table, chain, k, ParseRule(table, chain, cond + target));
                    });
                    return;
                }
            case 4:
                pair.Edit("-F " + table + " " + chain, h =>
                {
                    if (h.V4.Find(table)!.Find(chain) is not null) new RulesetEditor(h.V4).Flush(table, chain);
                });
                return;
            case 5:
                {
                    string policy = rnd.Next(3) == 0 ? "DROP" : "ACCEPT";
                    pair.Edit("-P FORWARD " + policy, h => new RulesetEditor(h.V4).SetPolicy("filter", "FORWARD", policy));
                    return;
                }
            case 6:
                {
                    bool back = renamed;
                    pair.Edit("-E OTHER", h =>
                    {
                        if (back) new RulesetEditor(h.V4).RenameChain("filter", "RENAMED", "OTHER");
                        else if (h.V4.Find("filter")!.Find("OTHER") is not null) new RulesetEditor(h.V4).RenameChain("filter", "OTHER", "RENAMED");
                    });
                    renamed = !renamed && pair.Slow.Host.V4.Find("filter")!.Find("RENAMED") is not null;
                    return;
                }
            case 7:
                pair.Edit("-Z", h => new RulesetEditor(h.V4).Zero("filter", null, 0));
                return;
            case 8:
                {
                    int mtu = rnd.Next(2) == 0 ? 100 : 1500;
                    pair.Edit("mtu eth0 " + mtu, h => h.Links.First(l => l.Name == "eth0").Mtu = mtu);
                    return;
                }
            case 9:
                {
                    string v = rnd.Next(2) == 0 ? "1" : "0";
                    pair.Edit("sysctl tcp_be_liberal " + v, h => h.Sysctls["net.netfilter.nf_conntrack_tcp_be_liberal"] = v);
                    return;
                }
            case 10:
                {
                    string addr = rnd.Next(2) == 0 ? "10.0.1.20" : "10.0.1.21";
                    pair.Edit("-R FORWARD 5 -d " + addr, h =>
                    {
                        Chain f = h.V4.Find("filter")!.Find("FORWARD")!;
                        if (f.Rules.Count >= 5) new RulesetEditor(h.V4).Replace("filter", "FORWARD", 5, ParseRule("filter", "FORWARD", " -i eth0 -d " + addr + "/32 -p tcp -m tcp --dport 80 -j ACCEPT"));
                    });
                    return;
                }
            default:
                pair.Edit("restore", h =>
                {
                    Ruleset fresh = EngineHost.Rules(IpFamily.V4, GatewayRules);
                    h.V4 = fresh;
                });
                return;
        }
    }

    public static TheoryData<int, bool> Seeds()
    {
        var d = new TheoryData<int, bool>();
        for (int seed = 1; seed <= 12; seed++) d.Add(seed, seed % 3 == 0);
        return d;
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Random_sequences_with_changes_between_packets_give_the_slow_paths_results_and_counters(int seed, bool compiled)
    {
        var rnd = new Random(seed);
        var pair = new Pair(GatewayRules, compiled);
        var flows = new List<Flow>();
        bool renamed = false;
        for (int step = 0; step < 160; step++)
        {
            int what = rnd.Next(20);
            if (what < 2 || flows.Count == 0)
            {
                var f = new Flow(pair, flows.Count, inbound: rnd.Next(3) == 0);
                f.Open();
                flows.Add(f);
            }
            else if (what < 14)
            {
                flows[rnd.Next(flows.Count)].Data(rnd);
            }
            else if (what == 14)
            {
                flows[rnd.Next(flows.Count)].Invalid();
            }
            else if (what == 15)
            {
                int k = rnd.Next(flows.Count);
                flows[k].Close();
                flows.RemoveAt(k);
            }
            else
            {
                RandomChange(pair, rnd, ref renamed);
            }
            pair.Same();
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_established_flow_is_replayed_and_every_edit_kind_is_seen_by_the_next_packet(bool compiled)
    {
        var pair = new Pair(GatewayRules, compiled);
        var flow = new Flow(pair, 1, inbound: false);
        flow.Open();
        var rnd = new Random(7);
        for (int i = 0; i < 6; i++) flow.Data(rnd);
        pair.Same();
        // The memo is made and used: the flow path's entry has remembered walks, the slow path's none.
        var fastCt = (ConnEntry)pair.Fast.Ct.Table.Entries.Single();
        fastCt.Flow.ShouldNotBeNull();
        fastCt.Flow.Walks.ShouldNotBeNull();
        fastCt.Flow.Original.Decision.ShouldNotBeNull();
        ((ConnEntry)pair.Slow.Ct.Table.Entries.Single()).Flow.ShouldBeNull();
        (string What, Action<VirtualHost> Edit)[] edits =
        [
            ("-P FORWARD DROP + flush", h => { new RulesetEditor(h.V4).Flush("filter", "FORWARD"); new RulesetEditor(h.V4).SetPolicy("filter", "FORWARD", "DROP"); }),
            ("restore", h => h.V4 = EngineHost.Rules(IpFamily.V4, GatewayRules)),
            ("-I FORWARD 1 -o eth0 -j DROP", h => new RulesetEditor(h.V4).Insert("filter", "FORWARD", 1, [ParseRule("filter", "FORWARD", " -o eth0 -j DROP")])),
            ("-D FORWARD 1", h => new RulesetEditor(h.V4).DeleteNumber("filter", "FORWARD", 1)),
            ("-I FWD-IN 1 -s 10.0.1.11 -j DROP", h => new RulesetEditor(h.V4).Insert("filter", "FWD-IN", 1, [ParseRule("filter", "FWD-IN", " -s 10.0.1.11/32 -j DROP")])),
            ("-F FWD-IN", h => new RulesetEditor(h.V4).Flush("filter", "FWD-IN")),
            ("-R mangle POSTROUTING 1 -j MARK", h => new RulesetEditor(h.V4).Replace("mangle", "POSTROUTING", 1, ParseRule("mangle", "POSTROUTING", " -o eth0 -j MARK --set-mark 0x5"))),
            ("-Z", h => new RulesetEditor(h.V4).Zero("filter", null, 0)),
            ("eth0 down", h => h.Links.First(l => l.Name == "eth0").Up = false),
            ("eth0 up", h => h.Links.First(l => l.Name == "eth0").Up = true),
        ];
        foreach (var (what, edit) in edits)
        {
            pair.Edit(what, edit);
            for (int i = 0; i < 3; i++) flow.Data(rnd);
            pair.Same();
        }
        flow.Close();
        pair.Same();
    }

    /// <summary>
    /// What is not replayed: a table with a volatile match anywhere, a non-pure target on the walk, a traced packet. The
    /// memo is then not made (or not used), and the results stay the slow path's.
    /// </summary>
    [Theory]
    [InlineData(" -m length --length 0:60 -j ACCEPT", false)]
    [InlineData(" -p tcp -m tcp --syn -j DROP", false)]
    [InlineData(" -m statistic --mode nth --every 2 --packet 0 -j ACCEPT", false)]
    [InlineData(" -o eth0 -j LOG --log-prefix fp:", false)]
    [InlineData(" -o eth0 -j MARK --set-mark 0x1", false)]
    [InlineData(" -i eth9 -j LOG --log-prefix never:", true)]
    [InlineData(" -m conntrack --ctstate ESTABLISHED --ctdir ORIGINAL", true)]
    public void Volatile_matches_and_non_pure_targets_keep_the_slow_path(string rule, bool memoised)
    {
        var pair = new Pair(GatewayRules, compiled: false);
        pair.Edit("-I FORWARD 1" + rule, h => new RulesetEditor(h.V4).Insert("filter", "FORWARD", 1, [ParseRule("filter", "FORWARD", rule)]));
        var flow = new Flow(pair, 2, inbound: false);
        flow.Open();
        var rnd = new Random(3);
        for (int i = 0; i < 8; i++) flow.Data(rnd);
        pair.Same();
        var ct = (ConnEntry)pair.Fast.Ct.Table.Entries.Single();
        bool filterMemo = false;
        foreach (FlowWalkMemo m in ct.Flow?.Walks ?? []) filterMemo |= m.Table.Name == "filter" && m.CtInfo == CtInfo.Established;
        filterMemo.ShouldBe(memoised);
    }

    /// <summary>
    /// Connections whose walks and routes come out the same share one flow state (a connection pays a reference, not a
    /// memo per walk: the conntrack entry stays within its bytes); a connection whose walk differs (its client is caught
    /// by FWD-IN's DROP rule's neighbour, here a port the multiport rule names) holds its own, and the results stay equal.
    /// </summary>
    [Fact]
    public void Connections_that_walk_alike_share_one_flow_state()
    {
        var pair = new Pair(GatewayRules, compiled: false);
        var flows = Enumerable.Range(0, 6).Select(n => new Flow(pair, n, inbound: n == 5)).ToArray();
        foreach (Flow f in flows)
        {
            f.Open();
            var rnd = new Random(f == flows[0] ? 5 : 6); // both directions twice or more, in different orders
            for (int i = 0; i < 12; i++) f.Data(rnd);
        }
        pair.Same();
        ConnEntry[] cts = pair.Fast.Ct.Table.Entries.Cast<ConnEntry>().OrderBy(c => c.Original.SourcePort).ToArray();
        cts.Length.ShouldBe(6);
        // The rules generation is process-wide: a test running beside this one that edits rules makes every memo be made
        // again (and connections re-recorded at different generations hold different states until their next packets).
        // Another round each way brings them together; a few rounds are allowed for that, not for sharing that never comes.
        for (int round = 0; round < 10 && !Enumerable.Range(1, 4).All(i => ReferenceEquals(cts[i].Flow, cts[0].Flow)); round++)
        {
            foreach (Flow f in flows) f.Both(10);
        }
        pair.Same();
        cts.ShouldAllBe(c => c.Flow != null && c.Flow.Walks.Length > 0);
        for (int i = 1; i < 5; i++) cts[i].Flow.ShouldBeSameAs(cts[0].Flow);
        cts[5].Flow.ShouldNotBeSameAs(cts[0].Flow);
    }

    /// <summary>
    /// The mark as the walk finds it is part of the memo's key: mangle marks short packets (a volatile match, so mangle is
    /// walked every time), and filter FORWARD's first rule accepts marked packets, so the flow's packets go two ways.
    /// </summary>
    [Fact]
    public void The_mark_at_the_walk_decides_which_memo_applies()
    {
        var pair = new Pair(GatewayRules, compiled: false);
        pair.Edit("mark short packets", h =>
        {
            new RulesetEditor(h.V4).Insert("mangle", "PREROUTING", 1, [ParseRule("mangle", "PREROUTING", " -i eth1 -m length --length 0:80 -j MARK --set-mark 0x1")]);
            new RulesetEditor(h.V4).Insert("filter", "FORWARD", 1, [ParseRule("filter", "FORWARD", " -m mark --mark 0x1/0x1 -j ACCEPT")]);
        });
        var flow = new Flow(pair, 4, inbound: false);
        flow.Open();
        var rnd = new Random(11);
        for (int i = 0; i < 30; i++)
        {
            flow.Data(rnd);
            pair.Same();
        }
    }

    /// <summary>
    /// The host is part of the memo's key (addrtype reads the host's addresses): mangle PREROUTING counts packets for a
    /// local destination; once the server's address is made one of the host's own, the next packet's walk differs.
    /// </summary>
    [Fact]
    public void A_host_change_is_seen_by_the_next_packet()
    {
        var pair = new Pair(GatewayRules, compiled: false);
        pair.Edit("count local destinations", h =>
            new RulesetEditor(h.V4).Insert("mangle", "PREROUTING", 1, [ParseRule("mangle", "PREROUTING", " -i eth1 -m addrtype --dst-type LOCAL -j ACCEPT")]));
        var flow = new Flow(pair, 5, inbound: false);
        flow.Open();
        var rnd = new Random(13);
        for (int i = 0; i < 4; i++) flow.Data(rnd);
        pair.Same();
        IpNet.TryParseStrict("93.184.216.34", IpFamily.V4, out UInt128 server).ShouldBeTrue();
        pair.Edit("ip addr add 93.184.216.34/32 dev eth1", h => h.Addresses.Add(new InterfaceAddress("eth1", IpFamily.V4, server, 32)));
        for (int i = 0; i < 4; i++)
        {
            flow.Data(rnd);
            pair.Same();
        }
    }

    /// <summary>UDP through MASQUERADE and the reply back, with a checksum and with none (zero stays zero): the flow path's rewrite gives the same bytes.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Udp_flows_are_rewritten_as_the_slow_path_does(bool zeroChecksum)
    {
        var pair = new Pair(GatewayRules, compiled: false);
        byte[] Zeroed(byte[] b)
        {
            if (zeroChecksum) b[26] = b[27] = 0;
            return b;
        }
        for (int n = 0; n < 3; n++)
        {
            PacketResult first = pair.Send("eth1", Zeroed(PacketBuilder.Ipv4("10.0.1." + (30 + n), "93.184.216.34").Udp((ushort)(5000 + n), 53).PayloadLength(20 + n).Build()));
            var ct = (ConnEntry)first.Connection!;
            ConnTuple r = ct.Reply;
            for (int i = 0; i < 4; i++)
            {
                pair.Send("eth0", Zeroed(PacketBuilder.Ipv4((uint)r.Source, (uint)r.Destination).Udp(r.SourcePort, r.DestinationPort).PayloadLength(40 + i).Build()));
                pair.Send("eth1", Zeroed(PacketBuilder.Ipv4("10.0.1." + (30 + n), "93.184.216.34").Udp((ushort)(5000 + n), 53).PayloadLength(i).Build()));
                pair.Same();
            }
        }
    }

    [Fact]
    public void A_traced_packet_is_walked_and_shows_the_walk()
    {
        var pair = new Pair(GatewayRules, compiled: false);
        var flow = new Flow(pair, 3, inbound: false);
        flow.Open();
        var rnd = new Random(5);
        for (int i = 0; i < 3; i++) flow.Data(rnd);
        pair.Fast.Nf.RecordTrace = pair.Slow.Nf.RecordTrace = true;
        for (int i = 0; i < 3; i++) flow.Data(rnd);
        pair.Same();
    }

    // ------------------------------------------------------------------ the one pass (Engine/OnePass.cs)

    /// <summary>Opens a flow and sends data both ways until its memos are made (the one pass serves it from then on).</summary>
    private static Flow Warm(Pair pair, int n, bool inbound)
    {
        var flow = new Flow(pair, n, inbound);
        flow.Open();
        for (int i = 0; i < 3; i++) flow.Both(10 + i);
        pair.Same();
        return flow;
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void Established_packets_go_through_the_one_pass_with_the_slow_paths_results(bool compiled, bool inbound)
    {
        var pair = new Pair(GatewayRules, compiled);
        Flow flow = Warm(pair, 1, inbound);
        long before = pair.Fast.Nf.OnePassPackets;
        for (int i = 0; i < 10; i++)
        {
            flow.Both(i * 37 % 300);
            pair.Same();
        }
        // Both directions of every round went through the one pass (memos held: no edit in between); never on the slow side.
        (pair.Fast.Nf.OnePassPackets - before).ShouldBe(20);
        pair.Slow.Nf.OnePassPackets.ShouldBe(0);
        flow.Close();
        pair.Same();
    }

    /// <summary>
    /// ip_forward's checks mid-flow: a TTL of 1 (ICMP time exceeded), a packet larger than the MTU with DF (fragmentation
    /// needed) go the slow way and come out as there; larger without DF it leaves in fragments through the one pass.
    /// </summary>
    [Theory]
    [InlineData("ttl1-client", false)]
    [InlineData("ttl1-server", false)]
    [InlineData("ttl2-client", true)]
    [InlineData("mtu-df-client", false)]
    [InlineData("mtu-df-server", false)]
    [InlineData("mtu-fragments-client", true)]
    public void Ttl_expiry_and_the_mtu_mid_flow_come_out_as_the_slow_paths(string what, bool onePass)
    {
        var pair = new Pair(GatewayRules, compiled: false);
        Flow flow = Warm(pair, 2, inbound: false);
        bool client = what.EndsWith("client", StringComparison.Ordinal);
        if (what.StartsWith("mtu", StringComparison.Ordinal))
        {
            pair.Edit("mtu 100 on both sides", h => { foreach (Link l in h.Links) l.Mtu = 100; });
            for (int i = 0; i < 2; i++) flow.Both(10);
        }
        long before = pair.Fast.Nf.OnePassPackets;
        PacketResult r = what switch
        {
            "ttl1-client" or "ttl1-server" => flow.Segment(client, TcpFlags.Ack | TcpFlags.Psh, 20, ttl: 1),
            "ttl2-client" => flow.Segment(client, TcpFlags.Ack | TcpFlags.Psh, 20, ttl: 2),
            "mtu-df-client" or "mtu-df-server" => flow.Segment(client, TcpFlags.Ack | TcpFlags.Psh, 200, df: true),
            _ => flow.Segment(client, TcpFlags.Ack | TcpFlags.Psh, 200),
        };
        pair.Same();
        (pair.Fast.Nf.OnePassPackets - before).ShouldBe(onePass ? 1 : 0);
        if (what.StartsWith("ttl1", StringComparison.Ordinal)) r.Outputs.ShouldContain(o => o.Kind == "generated");
        if (what == "mtu-fragments-client") r.Outputs.Count.ShouldBeGreaterThan(1);
        for (int i = 0; i < 3; i++)
        {
            flow.Both(10);
            pair.Same();
        }
    }

    /// <summary>
    /// TCP tracking stays per packet: out-of-window segments (INVALID: the slow way from after conntrack, nothing done
    /// twice), segments at the window's edges, an ACK of data never sent, a retransmission, RST and FIN moving the state;
    /// every packet's result, the counters and the conntrack table (state, timeout) as the slow path's.
    /// </summary>
    [Theory]
    [InlineData("invalid-then-data")]
    [InlineData("window-edges")]
    [InlineData("rst-from-server")]
    [InlineData("rst-from-client")]
    [InlineData("fin-both-ways")]
    [InlineData("liberal")]
    public void Tcp_tracking_mid_flow_moves_the_state_as_the_slow_path(string what)
    {
        var pair = new Pair(GatewayRules, compiled: false);
        Flow flow = Warm(pair, 3, inbound: false);
        void Step(bool client, TcpFlags flags, int payload, int seqOffset = 0, int ackOffset = 0)
        {
            flow.Segment(client, flags, payload, seqOffset: seqOffset, ackOffset: ackOffset);
            pair.Same();
        }
        const TcpFlags data = TcpFlags.Ack | TcpFlags.Psh;
        switch (what)
        {
            case "invalid-then-data":
                Step(true, TcpFlags.Ack, 10, seqOffset: 0x4000_0000);
                Step(false, TcpFlags.Ack, 10, seqOffset: -0x4000_0000);
                Step(true, data, 30);
                Step(false, data, 30);
                break;
            case "window-edges":
                // The window the SYN-ACK and the data advertised (PacketBuilder's default) and just beyond it; data already acknowledged; an ACK ahead.
                foreach (int off in new[] { 65000, 65534, 65535, 65536, 70000, -5, -40, -70000 })
                {
                    Step(true, data, 1, seqOffset: off);
                    Step(false, data, 1, seqOffset: off);
                }
                Step(true, data, 0, ackOffset: 1000);
                Step(true, data, 0, ackOffset: 200_000);
                Step(false, data, 0, ackOffset: -200_000);
                Step(true, data, 20);
                Step(false, data, 20);
                break;
            case "rst-from-server":
            case "rst-from-client":
                Step(true, data, 15);
                Step(what == "rst-from-client", TcpFlags.Rst | TcpFlags.Ack, 0);
                Step(true, data, 15);
                Step(false, data, 15);
                break;
            case "fin-both-ways":
                Step(true, TcpFlags.Fin | TcpFlags.Ack, 0);
                Step(false, data, 12);
                Step(true, TcpFlags.Ack, 0);
                Step(false, TcpFlags.Fin | TcpFlags.Ack, 0);
                Step(true, TcpFlags.Ack, 0);
                Step(false, data, 5);
                Step(true, data, 5);
                break;
            default:
                pair.Edit("sysctl tcp_be_liberal 1", h => h.Sysctls["net.netfilter.nf_conntrack_tcp_be_liberal"] = "1");
                for (int i = 0; i < 2; i++) flow.Both(10);
                Step(true, data, 10, seqOffset: 500_000);
                Step(false, data, 10, seqOffset: -500_000);
                Step(true, data, 10);
                break;
        }
        for (int i = 0; i < 3; i++)
        {
            flow.Both(7);
            pair.Same();
        }
    }

    /// <summary>
    /// Edits between packets are seen by the next one (the plan is made again for the new generations, or the packet goes
    /// the slow way while the memos are made again), and a rule with a LOG target on the walk keeps the flow off the one
    /// pass; taking it away lets the flow back on.
    /// </summary>
    [Fact]
    public void Edits_between_packets_and_a_log_rule_keep_the_results_and_take_the_flow_off_the_one_pass()
    {
        var pair = new Pair(GatewayRules, compiled: false);
        Flow flow = Warm(pair, 4, inbound: false);
        flow.Both(10);
        long start = pair.Fast.Nf.OnePassPackets;
        start.ShouldBeGreaterThan(0);
        pair.Edit("-I FORWARD 1 -o eth0 -j LOG", h => new RulesetEditor(h.V4).Insert("filter", "FORWARD", 1, [ParseRule("filter", "FORWARD", " -o eth0 -j LOG --log-prefix op:")]));
        for (int i = 0; i < 4; i++)
        {
            flow.Both(10);
            pair.Same();
        }
        // The client's packets leave by eth0 and are logged every time: never in the one pass. The replies still may be.
        long afterLog = pair.Fast.Nf.OnePassPackets;
        (afterLog - start).ShouldBeLessThanOrEqualTo(4);
        pair.Edit("-D FORWARD 1", h => new RulesetEditor(h.V4).DeleteNumber("filter", "FORWARD", 1));
        for (int i = 0; i < 4; i++)
        {
            flow.Both(10);
            pair.Same();
        }
        (pair.Fast.Nf.OnePassPackets - afterLog).ShouldBeGreaterThanOrEqualTo(4);
        pair.Edit("-P FORWARD DROP + flush", h => { new RulesetEditor(h.V4).Flush("filter", "FORWARD"); new RulesetEditor(h.V4).SetPolicy("filter", "FORWARD", "DROP"); });
        for (int i = 0; i < 3; i++)
        {
            flow.Both(10);
            pair.Same();
        }
    }

    /// <summary>
    /// nf_nat_oif_changed: when the route of a masqueraded connection moves to another device, its next original packet
    /// kills the connection and is dropped (NatHooks.Apply): the one pass leaves that to the slow path.
    /// </summary>
    [Fact]
    public void A_masqueraded_flow_whose_route_moves_is_killed_as_by_the_slow_path()
    {
        string[] network = [.. Gateway, "ip link add eth2 type dummy", "ip link set eth2 up", "ip addr add 192.0.2.2/24 dev eth2"];
        var pair = new Pair(GatewayRules.Replace("-A POSTROUTING -o eth0 -j MASQUERADE", "-A POSTROUTING -o eth+ -j MASQUERADE", StringComparison.Ordinal), compiled: false, network);
        Flow flow = Warm(pair, 5, inbound: false);
        flow.Both(10);
        pair.Edit("ip route add 93.184.216.0/24 dev eth2", h => h.Routes.Add(new Route(IpFamily.V4, 0x5DB8D800, 24, "eth2", null, null)));
        flow.Both(10);
        pair.Same();
        pair.Fast.Ct.Table.Count.ShouldBe(pair.Slow.Ct.Table.Count);
        flow.Both(10);
        pair.Same();
    }

    /// <summary>A flow to the host itself: the client's packets are delivered through the one pass (INPUT's tables), the host's replies go out by OUTPUT.</summary>
    [Fact]
    public void A_flow_to_the_host_itself_is_delivered_through_the_one_pass()
    {
        const string rules = """
            *filter
            :INPUT DROP [0:0]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
            -A INPUT -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT
            COMMIT
            *nat
            :PREROUTING ACCEPT [0:0]
            :INPUT ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            :POSTROUTING ACCEPT [0:0]
            COMMIT
            *raw
            :PREROUTING ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            COMMIT
            """;
        var pair = new Pair(rules, compiled: false);
        uint cseq = 100, sseq = 9000;
        byte[] In(TcpFlags f, int len) => PacketBuilder.Ipv4("10.0.1.50", "10.0.1.1").Tcp(50000, 22, f, seq: cseq, ack: f.HasFlag(TcpFlags.Ack) ? sseq : 0).PayloadLength(len).Build();
        byte[] Out(TcpFlags f, int len) => PacketBuilder.Ipv4("10.0.1.1", "10.0.1.50").Tcp(22, 50000, f, seq: sseq, ack: cseq).PayloadLength(len).Build();
        pair.Send("eth1", In(TcpFlags.Syn, 0));
        cseq++;
        pair.SendLocal(Out(TcpFlags.Syn | TcpFlags.Ack, 0));
        sseq++;
        for (int i = 0; i < 8; i++)
        {
            PacketResult r = pair.Send("eth1", In(TcpFlags.Ack | TcpFlags.Psh, 10 + i));
            r.Fate.ShouldBe(["delivered-local"]);
            cseq += (uint)(10 + i);
            pair.SendLocal(Out(TcpFlags.Ack | TcpFlags.Psh, 5));
            sseq += 5;
            pair.Same();
        }
        // The client's packets (INPUT) and the host's answers (OUTPUT, POSTROUTING, an empty raw OUTPUT counted) both.
        pair.Fast.Nf.OnePassPackets.ShouldBeGreaterThanOrEqualTo(12);
    }

    /// <summary>
    /// A local process's connection out through MASQUERADE: its established packets leave in one pass (OUTPUT's and
    /// POSTROUTING's memos replayed, the source binding applied) with the sender's mark as the walks saw it; a DNAT at OUTPUT
    /// (the kernel routes again) or a LOG rule at OUTPUT keeps them on the slow path; the answers come in through the pass.
    /// </summary>
    [Theory]
    [InlineData("plain", true)]
    [InlineData("mark", true)]
    [InlineData("mark-change", true)]
    [InlineData("dnat-output", false)]
    [InlineData("log-output", false)]
    public void A_local_senders_packets_go_out_through_the_one_pass(string what, bool onePass)
    {
        string rules = GatewayRules.Replace("-A POSTROUTING -o eth0 -m conntrack --ctstate ESTABLISHED", what switch
        {
            "mark" or "mark-change" => "-A POSTROUTING -o eth0 -m conntrack --ctstate ESTABLISHED\n-A OUTPUT -m mark --mark 0x5 -j ACCEPT",
            _ => "-A POSTROUTING -o eth0 -m conntrack --ctstate ESTABLISHED\n-A OUTPUT -p tcp -m tcp --dport 80",
        }, StringComparison.Ordinal);
        if (what == "dnat-output")
            rules = rules.Replace("-A POSTROUTING -o eth0 -j MASQUERADE", "-A OUTPUT -d 93.184.216.99/32 -p tcp -j DNAT --to-destination 93.184.216.34\n-A POSTROUTING -o eth0 -j MASQUERADE", StringComparison.Ordinal);
        if (what == "log-output")
            rules = rules.Replace("-A FWD-IN -i eth1", "-A OUTPUT -p tcp -j LOG --log-prefix out:\n-A FWD-IN -i eth1", StringComparison.Ordinal);
        var pair = new Pair(rules, compiled: false);
        string target = what == "dnat-output" ? "93.184.216.99" : "93.184.216.34";
        uint mark = what is "mark" or "mark-change" ? 5u : 0u;
        uint cseq = 300, sseq = 8000;
        byte[] Out(TcpFlags f, int len) => PacketBuilder.Ipv4("198.51.100.2", target).Tcp(45000, 80, f, seq: cseq, ack: f.HasFlag(TcpFlags.Ack) ? sseq : 0).PayloadLength(len).Build();
        byte[] In(TcpFlags f, int len) => PacketBuilder.Ipv4("93.184.216.34", "198.51.100.2").Tcp(80, 45000, f, seq: sseq, ack: cseq).PayloadLength(len).Build();
        PacketResult SendOut(TcpFlags f, int len)
        {
            Steps(pair, "local out");
            PacketResult r = SendLocal(pair, Out(f, len), mark);
            cseq += (uint)len + (f.HasFlag(TcpFlags.Syn) ? 1u : 0);
            return r;
        }
        SendOut(TcpFlags.Syn, 0);
        pair.Send("eth0", In(TcpFlags.Syn | TcpFlags.Ack, 0));
        sseq++;
        long before = pair.Fast.Nf.OnePassPackets;
        for (int i = 0; i < 8; i++)
        {
            // mark-change: one packet without the mark between marked ones (the plan is the mark's).
            if (what == "mark-change") mark = i == 6 ? 0u : 5u;
            PacketResult r = SendOut(TcpFlags.Ack | TcpFlags.Psh, 10 + i);
            r.Fate.ShouldBe(["sent:eth0"]);
            pair.Send("eth0", In(TcpFlags.Ack | TcpFlags.Psh, 4));
            sseq += 4;
            pair.Same();
        }
        long taken = pair.Fast.Nf.OnePassPackets - before;
        // The answers (delivered) go through the pass from their third on (7 of 8: the SYN-ACK was the first); the sender's
        // from their third on (6 of 8: the first established packet remembers nothing, the second makes the memos), when allowed.
        // mark-change: the sender's 3rd to 6th (4); the 7th (no mark) and the 8th (the memos are the 7th's) go the slow way.
        if (onePass) taken.ShouldBe(what == "mark-change" ? 11 : 13);
        else taken.ShouldBe(7);
        pair.Slow.Nf.OnePassPackets.ShouldBe(0);
    }

    private static void Steps(Pair pair, string what) => pair.Steps.Add(what);

    private static PacketResult SendLocal(Pair pair, byte[] bytes, uint mark)
    {
        pair.Now += 0.25;
        PacketResult f = pair.Fast.Nf.Process(new PacketInput { Bytes = (byte[])bytes.Clone(), At = pair.Now, Mark = mark });
        PacketResult s = pair.Slow.Nf.Process(new PacketInput { Bytes = (byte[])bytes.Clone(), At = pair.Now, Mark = mark });
        pair.Steps.Add("local packet: " + Describe(s));
        Describe(f).ShouldBe(Describe(s), string.Join('\n', pair.Steps));
        return s;
    }

    /// <summary>A raw table with a rule at PREROUTING (walked before conntrack) keeps every packet off the one pass; an empty one has its policy counted as the slow path counts it.</summary>
    [Theory]
    [InlineData("", true)]
    [InlineData("-A PREROUTING -p udp -j ACCEPT\n", false)]
    [InlineData("-A PREROUTING -i eth1 -p tcp -j TRACE\n", false)]
    public void The_raw_table_before_conntrack(string rawRules, bool onePass)
    {
        string rules = GatewayRules + "\n*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" + rawRules + "COMMIT\n";
        var pair = new Pair(rules, compiled: false);
        Flow flow = Warm(pair, 6, inbound: true);
        long before = pair.Fast.Nf.OnePassPackets;
        for (int i = 0; i < 4; i++)
        {
            flow.Both(20);
            pair.Same();
        }
        (pair.Fast.Nf.OnePassPackets > before).ShouldBe(onePass);
    }

    /// <summary>
    /// The folded rewrite (one update of each checksum for the destination manip, the TTL decrement and the source manip)
    /// writes the bytes of the three steps one after the other (NatPacket.ManipV4, ip_decrease_ttl, NatPacket.ManipV4),
    /// whatever checksum the packet came with: every value of the IP checksum word, the transport checksum's edges
    /// (0x0000, 0xffff, a UDP "none"), and the changes that make a sum come out zero.
    /// </summary>
    [Theory]
    [InlineData(IpProtocol.Tcp)]
    [InlineData(IpProtocol.Udp)]
    public void The_folded_rewrite_writes_the_bytes_of_the_steps_one_by_one(byte proto)
    {
        var rnd = new Random(proto);
        byte[] template = proto == IpProtocol.Tcp
            ? PacketBuilder.Ipv4("10.0.1.10", "198.51.100.2").Tcp(40000, 8080, TcpFlags.Ack).PayloadLength(9).Build()
            : PacketBuilder.Ipv4("10.0.1.10", "198.51.100.2").Udp(40000, 8080).PayloadLength(9).Build();
        int checkOff = 20 + (proto == IpProtocol.Tcp ? 16 : 6);
        for (int round = 0; round < 70_000; round++)
        {
            byte[] a = (byte[])template.Clone();
            // Every IP checksum word once (valid or not: the steps are arithmetic), transport checksums random and at the edges.
            ushort ipCheck = (ushort)(round & 0xffff);
            ushort l4Check = (round % 7) switch { 0 => 0, 1 => 0xffff, 2 => 1, _ => (ushort)rnd.Next(0x10000) };
            a[10] = (byte)(ipCheck >> 8);
            a[11] = (byte)ipCheck;
            a[checkOff] = (byte)(l4Check >> 8);
            a[checkOff + 1] = (byte)l4Check;
            a[8] = (byte)rnd.Next(2, 256);
            bool src = rnd.Next(3) != 0, dst = rnd.Next(3) != 0, ttl = rnd.Next(4) != 0;
            uint newSrc = (uint)rnd.Next(), newDst = (uint)rnd.Next();
            ushort newSport = (ushort)rnd.Next(0x10000), newDport = (ushort)rnd.Next(0x10000);
            if (round % 11 == 0)
            {
                // No change at all in the addresses and ports (a null binding's rewrite).
                newSrc = 0x0A00010A;
                newDst = 0xC6336402;
                newSport = 40000;
                newDport = 8080;
            }
            byte[] b = (byte[])a.Clone();
            if (dst) Chainwalk.Nat.NatPacket.ManipV4(b, 0, b.Length, proto, newDst, newDport, Chainwalk.Nat.NatManip.Dst).ShouldBeTrue();
            if (ttl)
            {
                // ip_decrease_ttl (include/net/ip.h), as Netfilter.DecrementTtl writes it.
                b[8]--;
                uint sum = (uint)((b[10] << 8) | b[11]) + 0x0100;
                if (sum >= 0xFFFF) sum++;
                b[10] = (byte)(sum >> 8);
                b[11] = (byte)sum;
            }
            if (src) Chainwalk.Nat.NatPacket.ManipV4(b, 0, b.Length, proto, newSrc, newSport, Chainwalk.Nat.NatManip.Src).ShouldBeTrue();
            byte[] c = (byte[])a.Clone();
            Chainwalk.Nat.NatPacket.RewriteEstablishedV4(c, proto, src, newSrc, newSport, dst, newDst, newDport, ttl);
            if (!c.AsSpan().SequenceEqual(b))
                Convert.ToHexString(c).ShouldBe(Convert.ToHexString(b), $"round {round}: ip 0x{ipCheck:x4} l4 0x{l4Check:x4} src {src} dst {dst} ttl {ttl}");
        }
    }

    private const string GatewayRules6 = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate INVALID -j DROP
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -i eth1 -j ACCEPT
        -A FORWARD -i eth0 -d fd00:1::20/128 -p tcp -m tcp --dport 80 -j ACCEPT
        -A FORWARD -i eth0 -d fd00:1::20/128 -p udp -m udp --dport 53 -j ACCEPT
        COMMIT
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A PREROUTING -d 2001:db8:100::2/128 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:1::20]:80
        -A PREROUTING -d 2001:db8:100::2/128 -p udp -m udp --dport 5353 -j DNAT --to-destination [fd00:1::20]:53
        -A POSTROUTING -o eth0 -j MASQUERADE
        COMMIT
        *mangle
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A POSTROUTING -o eth0 -m conntrack --ctstate ESTABLISHED
        COMMIT
        """;

    /// <summary>
    /// IPv6 flows (MASQUERADE out, a port forward in; TCP and UDP, a UDP checksum of zero among them) through the one pass:
    /// the same results (bytes, hop limit, checksums), counters of both families and conntrack table as the slow path,
    /// a hop limit of 1 and a packet over the MTU mid-flow going the slow way (ICMPv6 errors as there).
    /// </summary>
    [Theory]
    [InlineData(false, IpProtocol.Tcp)]
    [InlineData(true, IpProtocol.Tcp)]
    [InlineData(false, IpProtocol.Udp)]
    [InlineData(true, IpProtocol.Udp)]
    public void Ipv6_flows_go_through_the_one_pass_with_the_slow_paths_results(bool inbound, byte proto)
    {
        var pair = new Pair(GatewayRules, compiled: false, Chainwalk.Tests.Nat.NatRig.Gateway, GatewayRules6);
        string client = inbound ? "2001:db8:300::10" : "fd00:1::10", server = inbound ? "2001:db8:100::2" : "2001:db8:200::34";
        string clientIf = inbound ? "eth0" : "eth1", serverIf = inbound ? "eth1" : "eth0";
        ushort sport = 41000, dport = (ushort)(proto == IpProtocol.Tcp ? (inbound ? 8080 : 80) : (inbound ? 5353 : 53));
        uint cseq = 1000, sseq = 7000;
        ConnTuple reply = default;
        byte[] Build(bool fromClient, TcpFlags flags, int len, byte hops = 64, bool zeroUdp = false)
        {
            PacketBuilder pb = fromClient ? PacketBuilder.Ipv6(client, server) : PacketBuilder.Ipv6(IpNet.FormatAddress(reply.Source, IpFamily.V6), IpNet.FormatAddress(reply.Destination, IpFamily.V6));
            pb = pb.Ttl(hops);
            (ushort s, ushort d) = fromClient ? (sport, dport) : (reply.SourcePort, reply.DestinationPort);
            pb = proto == IpProtocol.Tcp
                ? pb.Tcp(s, d, flags, seq: fromClient ? cseq : sseq, ack: flags.HasFlag(TcpFlags.Ack) ? (fromClient ? sseq : cseq) : 0)
                : pb.Udp(s, d);
            byte[] b = pb.PayloadLength(len).Build();
            if (zeroUdp && proto == IpProtocol.Udp) b[46] = b[47] = 0;
            return b;
        }
        void Send(bool fromClient, TcpFlags flags, int len, byte hops = 64, bool zeroUdp = false)
        {
            pair.Send(fromClient ? clientIf : serverIf, Build(fromClient, flags, len, hops, zeroUdp));
            if (fromClient) cseq += (uint)len + (flags.HasFlag(TcpFlags.Syn) ? 1u : 0);
            else sseq += (uint)len + (flags.HasFlag(TcpFlags.Syn) ? 1u : 0);
            pair.Same();
        }
        PacketResult first = pair.Send(clientIf, Build(true, TcpFlags.Syn, 0));
        cseq++;
        reply = ((ConnEntry)first.Connection!).Reply;
        Send(false, TcpFlags.Syn | TcpFlags.Ack, 0);
        Send(true, TcpFlags.Ack, 0);
        for (int i = 0; i < 10; i++)
        {
            Send(true, TcpFlags.Ack | TcpFlags.Psh, 10 + i * 13, zeroUdp: i % 3 == 2);
            Send(false, TcpFlags.Ack | TcpFlags.Psh, 5 + i * 7, zeroUdp: i % 4 == 1);
        }
        pair.Fast.Nf.OnePassPackets.ShouldBeGreaterThanOrEqualTo(14);
        long before = pair.Fast.Nf.OnePassPackets;
        Send(true, TcpFlags.Ack | TcpFlags.Psh, 10, hops: 1);
        Send(false, TcpFlags.Ack | TcpFlags.Psh, 1500);
        pair.Fast.Nf.OnePassPackets.ShouldBe(before);
        for (int i = 0; i < 3; i++)
        {
            Send(true, TcpFlags.Ack | TcpFlags.Psh, 20);
            Send(false, TcpFlags.Ack | TcpFlags.Psh, 20);
        }
        pair.Fast.Nf.OnePassPackets.ShouldBe(before + 6);
        // The route of the client's packets moves (a host change between packets): the next ones follow it.
        IpNet.TryParseStrict(inbound ? "fd00:1::20" : "2001:db8:200::", IpFamily.V6, out UInt128 moved).ShouldBeTrue();
        var detour = new Route(IpFamily.V6, moved, inbound ? 128 : 48, inbound ? "eth0" : "eth1", null, null);
        pair.Edit("ip -6 route add (the client's destination) dev " + detour.Device, h => h.Routes.Add(detour));
        for (int i = 0; i < 3; i++)
        {
            Send(true, TcpFlags.Ack | TcpFlags.Psh, 20);
            Send(false, TcpFlags.Ack | TcpFlags.Psh, 20);
        }
        pair.Edit("ip -6 route del", h => h.Routes.Remove(detour));
        for (int i = 0; i < 3; i++)
        {
            Send(true, TcpFlags.Ack | TcpFlags.Psh, 20);
            Send(false, TcpFlags.Ack | TcpFlags.Psh, 20);
        }
    }

    /// <summary>The IPv6 folded rewrite against the two manips and the hop limit one after the other (NatPacket.Manip).</summary>
    [Theory]
    [InlineData(IpProtocol.Tcp)]
    [InlineData(IpProtocol.Udp)]
    public void The_folded_ipv6_rewrite_writes_the_bytes_of_the_steps_one_by_one(byte proto)
    {
        var rnd = new Random(proto + 6);
        byte[] template = proto == IpProtocol.Tcp
            ? PacketBuilder.Ipv6("fd00:1::10", "2001:db8:100::2").Tcp(40000, 8080, TcpFlags.Ack).PayloadLength(9).Build()
            : PacketBuilder.Ipv6("fd00:1::10", "2001:db8:100::2").Udp(40000, 8080).PayloadLength(9).Build();
        int checkOff = 40 + (proto == IpProtocol.Tcp ? 16 : 6);
        UInt128 R() => new((ulong)rnd.NextInt64(), (ulong)rnd.NextInt64());
        for (int round = 0; round < 70_000; round++)
        {
            byte[] a = (byte[])template.Clone();
            ushort l4Check = (round % 7) switch { 0 => 0, 1 => 0xffff, 2 => 1, _ => (ushort)round };
            a[checkOff] = (byte)(l4Check >> 8);
            a[checkOff + 1] = (byte)l4Check;
            a[7] = (byte)rnd.Next(2, 256);
            bool src = rnd.Next(3) != 0, dst = rnd.Next(3) != 0, hop = rnd.Next(4) != 0;
            var target = new ConnTuple(IpFamily.V6, proto, R(), R(), (ushort)rnd.Next(0x10000), (ushort)rnd.Next(0x10000));
            if (round % 11 == 0)
                target = new ConnTuple(IpFamily.V6, proto, System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(a.AsSpan(8)),
                    System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(a.AsSpan(24)), 40000, 8080);
            byte[] b = (byte[])a.Clone();
            if (dst) Chainwalk.Nat.NatPacket.Manip(b, 0, b.Length, target, Chainwalk.Nat.NatManip.Dst).ShouldBeTrue();
            if (hop) b[7]--;
            if (src) Chainwalk.Nat.NatPacket.Manip(b, 0, b.Length, target, Chainwalk.Nat.NatManip.Src).ShouldBeTrue();
            byte[] c = (byte[])a.Clone();
            Chainwalk.Nat.NatPacket.RewriteEstablishedV6(c, proto, src, target.Source, target.SourcePort, dst, target.Destination, target.DestinationPort, hop);
            if (!c.AsSpan().SequenceEqual(b))
                Convert.ToHexString(c).ShouldBe(Convert.ToHexString(b), $"round {round}: l4 0x{l4Check:x4} src {src} dst {dst} hop {hop}");
        }
    }
}
