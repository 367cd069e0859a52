using Chainwalk.Nat;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// After NAT's in-place IPv4 rewrite (<see cref="NatPacket.ManipV4"/>: the header checksum updated as csum_replace4 does) the
/// packet's facts are read again without computing the header checksum's validity afresh (session 10,
/// <c>Packet.TryRereadAddresses(ipChecksumKept: true)</c>): for headers whose checksum is right or wrong by any amount, the
/// validity kept is the one a computation over the rewritten header gives.
/// </summary>
public class NatRewriteChecksumTests
{
    public static TheoryData<int, byte> Cases() => new()
    {
        { 1, IpProtocol.Tcp },
        { 2, IpProtocol.Udp },
        { 3, IpProtocol.Tcp },
        { 4, IpProtocol.Udp },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void The_header_checksum_validity_kept_is_the_one_computed(int seed, byte protocol)
    {
        var rnd = new Random(seed);
        int valid = 0, invalid = 0;
        for (int i = 0; i < 2000; i++)
        {
            var b = PacketBuilder.Ipv4((uint)rnd.Next(), (uint)rnd.Next()).Ttl((byte)rnd.Next(1, 256));
            byte[] bytes = protocol == IpProtocol.Tcp
                ? b.Tcp((ushort)rnd.Next(65536), (ushort)rnd.Next(65536), TcpFlags.Syn, seq: (uint)rnd.Next()).Build()
                : b.Udp((ushort)rnd.Next(65536), (ushort)rnd.Next(65536)).PayloadLength(rnd.Next(0, 9)).Build();
            // Half of the headers with a wrong checksum (off by anything, 0x0000 and 0xffff included).
            if (rnd.Next(2) == 0)
            {
                int k = rnd.Next(4);
                ushort check = k == 0 ? (ushort)0 : k == 1 ? (ushort)0xffff : (ushort)rnd.Next(65536);
                bytes[10] = (byte)(check >> 8);
                bytes[11] = (byte)check;
            }
            Packet p = Packet.Parse(bytes);
            NatManip manip = rnd.Next(2) == 0 ? NatManip.Src : NatManip.Dst;
            uint ip = rnd.Next(8) == 0 ? (manip == NatManip.Src ? (uint)p.Source : (uint)p.Destination) : (uint)rnd.Next();
            NatPacket.ManipV4(bytes, 0, bytes.Length, protocol, ip, (ushort)rnd.Next(65536), manip).ShouldBeTrue();
            bool before = p.IpChecksumValid;
            p.TryRereadAddresses(ipChecksumKept: true).ShouldBeTrue();
            bool computed = Checksum.Compute(bytes.AsSpan(0, 20)) == 0;
            p.IpChecksumValid.ShouldBe(computed, $"case {i}");
            p.IpChecksumValid.ShouldBe(before);
            if (computed) valid++;
            else invalid++;
        }
        valid.ShouldBeGreaterThan(500);
        invalid.ShouldBeGreaterThan(500);
    }
}
