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
/// The arrival prefetch's mark for a connection's opening packet (session 10, <see cref="ConntrackTable.SynToken"/>): a TCP
/// SYN without ACK gets a token whose hash carries the mark, so that <see cref="ConntrackTable.PrefetchEntry"/> does not read
/// (and wait for) its slot; every reader of the token's hash clears it. The mark decides nothing: the lookup with a marked
/// hash finds what the lookup without a hint finds.
/// </summary>
public class SynTokenTests
{
    private const string Rules = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        COMMIT
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A POSTROUTING -o eth0 -j MASQUERADE
        COMMIT
        """;

    private sealed class Rig
    {
        public Rig()
        {
            Nf = new Netfilter(EngineHost.Create(Rules, "", Chainwalk.Tests.Nat.NatRig.Gateway4));
            Ct = ConntrackLoader.Enable(Nf) ?? throw new InvalidOperationException("conntrack not loaded");
        }

        public Netfilter Nf { get; }

        public ConntrackHooks Ct { get; }

        public PacketResult Send(byte[] bytes) => Nf.Process(EngineHost.In("eth1", bytes));
    }

    private static byte[] Tcp(TcpFlags flags, ushort sport = 40000, uint seq = 1000, uint ack = 0) =>
        PacketBuilder.Ipv4("10.0.1.10", "93.184.216.34").Tcp(sport, 80, flags, seq: seq, ack: ack).Build();

    public static TheoryData<TcpFlags, bool> Flags => new()
    {
        { TcpFlags.Syn, true },
        { TcpFlags.Syn | TcpFlags.Ece | TcpFlags.Cwr, true },
        { TcpFlags.Syn | TcpFlags.Fin, true },
        { TcpFlags.Syn | TcpFlags.Ack, false },
        { TcpFlags.Ack, false },
        { TcpFlags.Rst, false },
        { TcpFlags.Fin | TcpFlags.Ack, false },
        { TcpFlags.None, false },
    };

    [Theory]
    [MemberData(nameof(Flags))]
    public void Only_a_syn_without_ack_is_marked_and_the_rest_of_the_token_is_the_tuples(TcpFlags flags, bool marked)
    {
        var rig = new Rig();
        // Tokens are given once the table holds a connection.
        rig.Send(Tcp(TcpFlags.Syn, sport: 1)).Fate.ShouldBe(["forwarded:eth0"]);
        long token = rig.Ct.Prefetch(Tcp(flags));
        token.ShouldBeGreaterThanOrEqualTo(0);
        ((token & ConntrackTable.SynToken) != 0).ShouldBe(marked);
        (token & ~ConntrackTable.SynToken).ShouldBe(rig.Ct.Table.PrefetchV4(IpProtocol.Tcp, 0x0a00010a, 0x5db8d822, 40000, 80));
        rig.Ct.PrefetchMore(token);
    }

    [Fact]
    public void A_udp_datagram_is_never_marked()
    {
        var rig = new Rig();
        rig.Send(Tcp(TcpFlags.Syn, sport: 1));
        // The byte where TCP's flags would be (in the payload) holds SYN.
        byte[] udp = PacketBuilder.Ipv4("10.0.1.10", "93.184.216.34").Udp(40000, 53).PayloadLength(16).Build();
        udp[20 + 13] = 0x02;
        long token = rig.Ct.Prefetch(udp);
        token.ShouldBeGreaterThanOrEqualTo(0);
        (token & ConntrackTable.SynToken).ShouldBe(0);
    }

    public static TheoryData<int> Repeats => new() { 1, 2, 5 };

    /// <summary>
    /// A retransmitted SYN (and a SYN of a connection other connections crowd around) is looked up with the marked hash
    /// the arrival handed over: it finds its unconfirmed-then-confirmed entry (one connection, the same object), as a
    /// lookup without a hint does.
    /// </summary>
    [Theory]
    [MemberData(nameof(Repeats))]
    public void A_retransmitted_syn_finds_its_connection_through_the_marked_hash(int repeats)
    {
        var rig = new Rig();
        // Neighbours in the hash: many connections, so that a probe from the wrong slot would run past the entry.
        for (int i = 0; i < 200; i++) rig.Send(Tcp(TcpFlags.Syn, sport: (ushort)(1000 + i))).Fate.ShouldBe(["forwarded:eth0"]);
        PacketResult first = rig.Send(Tcp(TcpFlags.Syn));
        first.Fate.ShouldBe(["forwarded:eth0"]);
        var ct = (ConnEntry)first.Connection!;
        for (int k = 0; k < repeats; k++)
        {
            PacketResult again = rig.Send(Tcp(TcpFlags.Syn));
            again.Fate.ShouldBe(["forwarded:eth0"]);
            again.CtState.ShouldBe("NEW");
            again.Connection.ShouldBeSameAs(ct);
        }
        rig.Ct.Table.Count.ShouldBe(201);
    }
}
