using Chainwalk.Conntrack;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Conntrack;

/// <summary>
/// tcp_new (nf_conntrack_proto_tcp.c) as <see cref="TcpTracker.New"/> writes it into the entry: the first packet's side from
/// its sequence, window and options (a SYN), or picked up in the middle with SACK assumed and liberal windows (nf_conntrack_tcp_loose),
/// every other field of the TCP state zero; a refused packet leaves the entry's state as it was.
/// </summary>
public class TcpNewTests
{
    private static ConnEntry Entry() => new(new ConnTuple(IpFamily.V4, IpProtocol.Tcp, 0x0a000001, 0x0a000002, 40000, 80),
        new ConnTuple(IpFamily.V4, IpProtocol.Tcp, 0x0a000002, 0x0a000001, 80, 40000));

    /// <summary>An entry whose TCP state is full of other values (a pooled entry's earlier life, as far as tcp_new can tell).</summary>
    private static ConnEntry Used()
    {
        ConnEntry ct = Entry();
        var st = new TcpConnState
        {
            State = TcpCtState.TimeWait, LastDir = 1, LastIndex = TcpTracker.AckSet, LastSeq = 7, LastAck = 8, LastEnd = 9,
            LastWin = 10, LastWscale = 3, LastFlags = 0x41, Retrans = 2,
        };
        st.Seen[0] = new TcpSide { End = 11, MaxEnd = 12, MaxWin = 13, MaxAck = 14, Scale = 5, Flags = 0x3f };
        st.Seen[1] = new TcpSide { End = 21, MaxEnd = 22, MaxWin = 23, MaxAck = 24, Scale = 6, Flags = 0x3f };
        ct.SetTcp(st);
        return ct;
    }

    private static string Describe(in TcpConnState s) =>
        $"{s.State} last {s.LastDir}/{s.LastIndex} seq {s.LastSeq} ack {s.LastAck} end {s.LastEnd} win {s.LastWin} ws {s.LastWscale} lf {s.LastFlags} re {s.Retrans} | "
        + $"{s.Seen[0].End} {s.Seen[0].MaxEnd} {s.Seen[0].MaxWin} {s.Seen[0].MaxAck} {s.Seen[0].Scale} {s.Seen[0].Flags} | "
        + $"{s.Seen[1].End} {s.Seen[1].MaxEnd} {s.Seen[1].MaxWin} {s.Seen[1].MaxAck} {s.Seen[1].Scale} {s.Seen[1].Flags}";

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_SYN_gives_its_side_from_sequence_window_and_options(bool used)
    {
        ConnEntry ct = used ? Used() : Entry();
        Packet p = PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Tcp(40000, 80, TcpFlags.Syn | TcpFlags.Ece | TcpFlags.Cwr, seq: 1000, window: 29200)
            .Mss(1460).TcpOption(TcpOptionKind.SackPermitted).TcpOption(TcpOptionKind.Nop).TcpOption(TcpOptionKind.WindowScale, [7]).BuildPacket();
        TcpTracker.New(ct, p, new VirtualHost()).ShouldBeTrue();
        ct.HasTcp.ShouldBeTrue();
        // End = seq + 1 (the SYN), MaxEnd = End, MaxWin = the window unscaled, scale 7, window scaling and SACK permitted.
        Describe(ct.Tcp).ShouldBe("None last 0/5 seq 0 ack 0 end 0 win 0 ws 0 lf 0 re 0 | 1001 1001 29200 0 7 3 | 0 0 0 0 0 0");
    }

    [Fact]
    public void A_SYN_with_a_zero_window_and_no_options_counts_a_window_of_one()
    {
        ConnEntry ct = Used();
        Packet p = PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Tcp(40000, 80, TcpFlags.Syn, seq: 0xffffffff, window: 0).BuildPacket();
        TcpTracker.New(ct, p, new VirtualHost()).ShouldBeTrue();
        Describe(ct.Tcp).ShouldBe("None last 0/5 seq 0 ack 0 end 0 win 0 ws 0 lf 0 re 0 | 0 0 1 0 0 0 | 0 0 0 0 0 0");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_packet_picked_up_in_the_middle_assumes_SACK_and_liberal_windows(bool used)
    {
        ConnEntry ct = used ? Used() : Entry();
        // Options of a later segment are not read (tcp_new reads them for a SYN only).
        Packet p = PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Tcp(40000, 80, TcpFlags.Ack | TcpFlags.Psh, seq: 5000, ack: 9, window: 1000)
            .TcpOption(TcpOptionKind.Nop).TcpOption(TcpOptionKind.WindowScale, [7]).PayloadLength(100).BuildPacket();
        TcpTracker.New(ct, p, new VirtualHost()).ShouldBeTrue();
        ct.HasTcp.ShouldBeTrue();
        // End = seq + 100, MaxEnd = End + MaxWin, both sides SACK-permitted and liberal (0x0a).
        Describe(ct.Tcp).ShouldBe("None last 0/5 seq 0 ack 0 end 0 win 0 ws 0 lf 0 re 0 | 5100 6100 1000 0 0 10 | 0 0 0 0 0 10");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_refused_first_packet_leaves_the_entry_as_it_was(bool used)
    {
        var host = new VirtualHost();
        host.Sysctls["net.netfilter.nf_conntrack_tcp_loose"] = "0";
        ConnEntry ct = used ? Used() : Entry();
        string before = Describe(ct.Tcp);
        bool had = ct.HasTcp;
        // Without nf_conntrack_tcp_loose a mid-stream ACK starts nothing; a SYN-ACK, a FIN or a bare RST never do.
        TcpTracker.New(ct, PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Tcp(40000, 80, TcpFlags.Ack, seq: 5).BuildPacket(), host).ShouldBeFalse();
        foreach (TcpFlags f in new[] { TcpFlags.Syn | TcpFlags.Ack, TcpFlags.Fin, TcpFlags.Rst, TcpFlags.None })
            TcpTracker.New(ct, PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Tcp(40000, 80, f, seq: 5).BuildPacket(), new VirtualHost()).ShouldBeFalse();
        ct.HasTcp.ShouldBe(had);
        Describe(ct.Tcp).ShouldBe(before);
        // With it (the default) the same ACK is picked up.
        TcpTracker.New(ct, PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Tcp(40000, 80, TcpFlags.Ack, seq: 5).BuildPacket(), new VirtualHost()).ShouldBeTrue();
    }
}
