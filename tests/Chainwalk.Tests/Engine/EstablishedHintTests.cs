using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// What the established path keeps or guesses between packets (session 5): the conntrack sysctls read once per host
/// generation (ConntrackSysctls), the cache hints given while a packet is parsed (the conntrack slot and entry, the input
/// route of the destination the connection's binding gives) and the confirmation skipped for confirmed connections.
/// Hints decide nothing: any bytes, stale tokens and changed tables leave every result as it was.
/// </summary>
public class EstablishedHintTests
{
    /// <summary>The NAT gateway of NatRig: LAN eth1 10.0.1.0/24 masqueraded out of eth0, a port forward to 10.0.1.20:80.</summary>
    private const string Rules = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate INVALID -j DROP
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -i eth1 -j ACCEPT
        -A FORWARD -i eth0 -d 10.0.1.20/32 -p tcp -m tcp --dport 80 -j ACCEPT
        COMMIT
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A PREROUTING -d 198.51.100.2/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.1.20:80
        -A POSTROUTING -o eth0 -j MASQUERADE
        COMMIT
        """;

    private static readonly string[] Gateway = Chainwalk.Tests.Nat.NatRig.Gateway4;

    private sealed class Rig
    {
        public Rig()
        {
            Host = EngineHost.Create(Rules, "", Gateway);
            Nf = new Netfilter(Host);
            Ct = ConntrackLoader.Enable(Nf) ?? throw new InvalidOperationException("conntrack not loaded");
        }

        public VirtualHost Host { get; }

        public Netfilter Nf { get; }

        public ConntrackHooks Ct { get; }

        public PacketResult Send(string iface, byte[] bytes) => Nf.Process(EngineHost.In(iface, bytes));

        /// <summary>SYN from the LAN client out by MASQUERADE, the server's SYN-ACK back to the masqueraded address.</summary>
        public ConnEntry Handshake()
        {
            PacketResult syn = Send("eth1", PacketBuilder.Ipv4("10.0.1.10", "93.184.216.34").Tcp(40000, 80, TcpFlags.Syn, seq: 1000).Build());
            var ct = (ConnEntry)syn.Connection!;
            ConnTuple r = ct.Reply;
            Send("eth0", PacketBuilder.Ipv4((uint)r.Source, (uint)r.Destination).Tcp(r.SourcePort, r.DestinationPort, TcpFlags.Syn | TcpFlags.Ack, seq: 5000, ack: 1001).Build());
            return ct;
        }

        public static byte[] Ack(uint seq = 1001) => PacketBuilder.Ipv4("10.0.1.10", "93.184.216.34").Tcp(40000, 80, TcpFlags.Ack, seq: seq, ack: 5001).Build();
    }

    private static uint V4(string text)
    {
        IpNet.TryParseStrict(text, IpFamily.V4, out UInt128 a).ShouldBeTrue();
        return (uint)a;
    }

    public static TheoryData<string, string, string, long, long> SysctlChanges => new()
    {
        // key, value before the first ACK, value before the second, seconds left after each
        { "net.netfilter.nf_conntrack_tcp_timeout_established", "100", "250", 100, 250 },
        { "net.netfilter.nf_conntrack_tcp_timeout_established", "432000", "7", 432000, 7 },
        // max_retrans 0 ≤ retrans 0: the retransmission timeout caps the state's when it is shorter.
        { "net.netfilter.nf_conntrack_tcp_max_retrans", "0", "3", 300, 432000 },
        { "net.netfilter.nf_conntrack_tcp_timeout_max_retrans", "432000", "50", 432000, 432000 },
    };

    [Theory]
    [MemberData(nameof(SysctlChanges))]
    public void A_conntrack_sysctl_changed_between_two_packets_is_seen_by_the_second(string key, string first, string second, long leftFirst, long leftSecond)
    {
        var rig = new Rig();
        ConnEntry ct = rig.Handshake();
        rig.Host.Sysctls[key] = first;
        rig.Send("eth1", Rig.Ack()).Fate.ShouldBe(["forwarded:eth0"]);
        ct.SecondsLeft(rig.Nf.State.Now).ShouldBe(leftFirst);
        rig.Host.Sysctls[key] = second;
        rig.Send("eth1", Rig.Ack()).Fate.ShouldBe(["forwarded:eth0"]);
        ct.SecondsLeft(rig.Nf.State.Now).ShouldBe(leftSecond);
    }

    [Theory]
    [InlineData("1", "dropped", "INVALID")]
    [InlineData("0", "forwarded:eth0", "ESTABLISHED")]
    public void The_checksum_sysctl_decides_for_the_next_packet_after_it_changed(string checksum, string fate, string state)
    {
        var rig = new Rig();
        rig.Handshake();
        rig.Send("eth1", Rig.Ack()).CtState.ShouldBe("ESTABLISHED");
        rig.Host.Sysctls["net.netfilter.nf_conntrack_checksum"] = checksum;
        byte[] bad = Rig.Ack();
        bad[20 + 16] ^= 0x5a; // the TCP checksum
        PacketResult r = rig.Send("eth1", bad);
        r.Fate.ShouldBe([fate]);
        r.CtState.ShouldBe(state);
    }

    public static TheoryData<string, string, string, ushort, ushort, string> Directions => new()
    {
        // in, source, destination, ports, the destination the route is asked for (the packet's after PREROUTING)
        { "eth0", "203.0.113.5", "198.51.100.2", 5555, 8080, "10.0.1.20" },     // port forward: DNAT
        { "eth1", "10.0.1.20", "203.0.113.5", 80, 5555, "203.0.113.5" },        // its reply: un-DNAT changes the source only
    };

    [Theory]
    [MemberData(nameof(Directions))]
    public void The_route_hint_is_the_destination_the_packet_is_routed_by(string iface, string src, string dst, ushort sport, ushort dport, string routed)
    {
        var rig = new Rig();
        rig.Send("eth0", PacketBuilder.Ipv4("203.0.113.5", "198.51.100.2").Tcp(5555, 8080, TcpFlags.Syn, seq: 1).Build()).Fate.ShouldBe(["forwarded:eth1"]);
        rig.Send("eth1", PacketBuilder.Ipv4("10.0.1.20", "203.0.113.5").Tcp(80, 5555, TcpFlags.Syn | TcpFlags.Ack, seq: 9, ack: 2).Build()).Fate.ShouldBe(["forwarded:eth0"]);
        PacketResult r = rig.Send(iface, PacketBuilder.Ipv4(src, dst).Tcp(sport, dport, TcpFlags.Ack, seq: iface == "eth0" ? 2u : 10u, ack: iface == "eth0" ? 10u : 2u).Build());
        r.Fate.Count.ShouldBe(1);
        r.Fate[0].ShouldStartWith("forwarded:");
        var skb = new Skb(Packet.Parse(PacketBuilder.Ipv4(src, dst).Tcp(sport, dport, TcpFlags.Ack).Build()))
        {
            Conntrack = r.Connection,
            CtInfo = iface == "eth0" ? CtInfo.Established : CtInfo.EstablishedReply,
        };
        uint expected = V4(routed);
        rig.Ct.TryRoutedDestination4(skb, out uint got).ShouldBeTrue();
        got.ShouldBe(expected);
        ((uint)r.Outputs[0].Packet.Destination).ShouldBe(expected);
    }

    [Fact]
    public void The_masqueraded_reply_is_routed_by_the_client_address()
    {
        var rig = new Rig();
        ConnEntry ct = rig.Handshake();
        var skb = new Skb(Packet.Parse(Rig.Ack())) { Conntrack = ct, CtInfo = CtInfo.EstablishedReply };
        rig.Ct.TryRoutedDestination4(skb, out uint got).ShouldBeTrue();
        got.ShouldBe(V4("10.0.1.10"));
        skb.CtInfo = CtInfo.None;
        rig.Ct.TryRoutedDestination4(skb, out _).ShouldBeFalse();
    }

    public static TheoryData<string> OddInputs => new()
    {
        "",
        "4500",
        "45000028000040004006",                                                         // cut in the header
        "4f000028000040004006000001020304050607080000",                                  // IHL 60, 22 bytes
        "4500002800002000400600000a00010a5db8d822",                                      // more fragments, no ports
        "60000000000806400000000000000000000000000000000100000000000000000000000000000002", // IPv6
        "45000028000040000106000001020304050607089c400050",                              // ICMP-numbered protocol
    };

    [Theory]
    [MemberData(nameof(OddInputs))]
    public void Prefetch_hints_on_any_bytes_change_nothing(string hex)
    {
        var rig = new Rig();
        ConnEntry ct = rig.Handshake();
        string before = string.Join("\n", rig.Ct.Table.List(rig.Nf.State.Now));
        byte[] bytes = Convert.FromHexString(hex);
        long token = rig.Ct.Prefetch(bytes);
        rig.Ct.PrefetchMore(token);
        rig.Ct.PrefetchMore(long.MaxValue);
        rig.Ct.PrefetchMore(((long)0x7fff_fffe << 32) | 0x7fff_ffff);
        string.Join("\n", rig.Ct.Table.List(rig.Nf.State.Now)).ShouldBe(before);
        rig.Ct.Table.Count.ShouldBe(1);
        ct.IsConfirmed.ShouldBeTrue();
    }

    [Fact]
    public void A_token_kept_while_the_table_grows_and_its_entry_goes_is_harmless()
    {
        var rig = new Rig();
        rig.Handshake();
        long token = rig.Ct.Prefetch(Rig.Ack());
        token.ShouldBeGreaterThanOrEqualTo(0);
        // Enough new connections to grow the hash several times, then the first connection removed.
        for (int i = 0; i < 300; i++)
        {
            rig.Send("eth1", PacketBuilder.Ipv4("10.0.1.11", "93.184.216.34").Tcp((ushort)(20000 + i), 80, TcpFlags.Syn, seq: 1).Build()).Fate.ShouldBe(["forwarded:eth0"]);
        }
        ConnEntry first = rig.Ct.Table.Entries.First();
        rig.Ct.Table.Remove(first);
        rig.Ct.PrefetchMore(token);
        rig.Ct.Table.Count.ShouldBe(300);
        // Its connection gone, the ACK is picked up as a new one (nf_conntrack_tcp_loose=1), as without any hint.
        rig.Send("eth1", Rig.Ack()).CtState.ShouldBe("NEW");
    }

    [Fact]
    public void Only_an_unconfirmed_connection_needs_its_confirmation()
    {
        var rig = new Rig();
        ConnEntry ct = rig.Handshake();
        var skb = new Skb(Packet.Parse(Rig.Ack())) { Conntrack = ct, CtInfo = CtInfo.Established };
        rig.Ct.NeedsConfirm(skb).ShouldBeFalse();
        var fresh = new ConnEntry(ct.Original, ct.Reply);
        skb.Conntrack = fresh;
        rig.Ct.NeedsConfirm(skb).ShouldBeTrue();
        skb.Conntrack = null;
        rig.Ct.NeedsConfirm(skb).ShouldBeFalse();
    }

    public static TheoryData<string, string> TcpStages => new()
    {
        // after which packets, the state conntrack -L shows
        { "syn", "SYN_SENT" },
        { "syn,synack", "SYN_RECV" },
        { "syn,synack,ack", "ESTABLISHED" },
        { "syn,synack,ack,fin", "FIN_WAIT" },
    };

    [Theory]
    [MemberData(nameof(TcpStages))]
    public void The_inline_tcp_state_survives_save_and_load_and_the_listing_is_unchanged(string packets, string state)
    {
        var rig = new Rig();
        foreach (string step in packets.Split(','))
        {
            ConnEntry? ct = rig.Ct.Table.Entries.FirstOrDefault();
            ConnTuple r = ct?.Reply ?? default;
            byte[] bytes = step switch
            {
                "syn" => PacketBuilder.Ipv4("10.0.1.10", "93.184.216.34").Tcp(40000, 80, TcpFlags.Syn, seq: 1000).Build(),
                "synack" => PacketBuilder.Ipv4((uint)r.Source, (uint)r.Destination).Tcp(r.SourcePort, r.DestinationPort, TcpFlags.Syn | TcpFlags.Ack, seq: 5000, ack: 1001).Build(),
                "ack" => Rig.Ack(),
                _ => PacketBuilder.Ipv4("10.0.1.10", "93.184.216.34").Tcp(40000, 80, TcpFlags.Fin | TcpFlags.Ack, seq: 1001, ack: 5001).Build(),
            };
            rig.Send(step is "synack" ? "eth0" : "eth1", bytes).Fate.ShouldBe([step is "synack" ? "forwarded:eth1" : "forwarded:eth0"]);
        }
        double now = rig.Nf.State.Now;
        ConnEntry entry = rig.Ct.Table.Entries.Single();
        entry.HasTcp.ShouldBeTrue();
        entry.TcpState.ShouldBe(Enum.Parse<TcpCtState>(state.Replace("_", "", StringComparison.Ordinal), ignoreCase: true));
        string listing = string.Join("\n", rig.Ct.Table.List(now));
        listing.ShouldContain(" " + state + " ");
        string saved = ConntrackStore.Format(rig.Ct.Table, now);
        ConntrackTable loaded = ConntrackStore.Parse(saved);
        string.Join("\n", loaded.List(now)).ShouldBe(listing);
        ConntrackStore.Format(loaded, now).ShouldBe(saved);
        ConnEntry back = loaded.Entries.Single();
        back.Tcp.Seen[0].End.ShouldBe(entry.Tcp.Seen[0].End);
        back.Tcp.Seen[1].MaxWin.ShouldBe(entry.Tcp.Seen[1].MaxWin);
        back.Tcp.LastIndex.ShouldBe(entry.Tcp.LastIndex);
        // A copy (what an event reports) has its own TCP state: changing the entry later does not change it.
        ConnEntry copy = entry.Copy();
        entry.Tcp.State = TcpCtState.Close;
        copy.TcpState.ShouldBe(back.TcpState);
    }

    [Fact]
    public void A_udp_connection_has_no_tcp_state()
    {
        var rig = new Rig();
        PacketResult r = rig.Send("eth1", PacketBuilder.Ipv4("10.0.1.10", "93.184.216.34").Udp(5353, 53).Build());
        var ct = (ConnEntry)r.Connection!;
        ct.HasTcp.ShouldBeFalse();
        ct.TcpState.ShouldBeNull();
        string.Join("\n", rig.Ct.Table.List(rig.Nf.State.Now)).ShouldStartWith("udp      17 30 src=10.0.1.10 ");
    }
}
