using System.Buffers.Binary;
using Chainwalk.Nat;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Nat;

/// <summary>
/// After <see cref="NatPacket.ManipV4"/> the nat hook sets the packet's facts from the values it wrote
/// (<see cref="Packet.TryAddressRewrittenV4"/>, session 13) instead of reading them back (<see cref="Packet.TryRereadAddresses"/>).
/// Both must leave the same facts: random IPv4 TCP (with options, with an 8-byte header) and UDP packets, either manip,
/// addresses and ports kept or changed, link-layer facts set before; and ManipV4 (reading and writing by reference after its
/// length checks) must write what the kernel's steps write for any header length, at any offset, and nothing past the
/// packet's length.
/// </summary>
public class NatRewrittenFactsTests
{
    [Theory]
    [InlineData(1, IpProtocol.Tcp)]
    [InlineData(2, IpProtocol.Udp)]
    [InlineData(3, IpProtocol.Tcp)]
    public void Facts_set_from_the_written_values_equal_the_facts_read_back(int seed, byte protocol)
    {
        var rnd = new Random(seed);
        for (int i = 0; i < 5_000; i++)
        {
            int options = rnd.Next(4) == 0 ? 4 * rnd.Next(1, 11) : 0;
            int transport = protocol == IpProtocol.Tcp ? (rnd.Next(6) == 0 ? 8 : 20) : 8;
            byte[] a = RandomPacket(rnd, options, transport, rnd.Next(0, 6), protocol);
            byte[] b = a.ToArray();
            Packet read = Packet.Parse(a);
            Packet set = Packet.Parse(b);
            read.SetLinkFacts(0x0200_0000_0001, 7);
            set.SetLinkFacts(0x0200_0000_0001, 7);
            NatManip manip = rnd.Next(2) == 0 ? NatManip.Src : NatManip.Dst;
            uint ip = rnd.Next(3) == 0 ? (manip == NatManip.Src ? (uint)read.Source : (uint)read.Destination) : (uint)rnd.Next() ^ ((uint)rnd.Next(2) << 31);
            ushort port = (ushort)rnd.Next(65536);
            NatPacket.ManipV4(read.Bytes, 0, read.TotalLength, protocol, ip, port, manip).ShouldBeTrue();
            NatPacket.ManipV4(set.Bytes, 0, set.TotalLength, protocol, ip, port, manip).ShouldBeTrue();
            read.TryRereadAddresses(ipChecksumKept: true).ShouldBeTrue();
            set.TryAddressRewrittenV4(manip == NatManip.Src, ip, port).ShouldBeTrue();
            string why = $"case {i}: {Convert.ToHexString(a)} {manip} {ip:x8}:{port}";
            set.Bytes.ShouldBe(read.Bytes, why);
            set.Source.ShouldBe(read.Source, why);
            set.Destination.ShouldBe(read.Destination, why);
            set.SourcePort.ShouldBe(read.SourcePort, why);
            set.DestinationPort.ShouldBe(read.DestinationPort, why);
            set.HasPorts.ShouldBe(read.HasPorts, why);
            set.IpChecksumValid.ShouldBe(read.IpChecksumValid, why);
            set.TransportChecksumValid.ShouldBe(read.TransportChecksumValid, why);
            set.SourceMac.ShouldBe(read.SourceMac, why);
            set.VlanId.ShouldBe(read.VlanId, why);
            set.ToString().ShouldBe(read.ToString(), why);
            // And both as a fresh parse of the rewritten bytes gives them.
            Packet fresh = Packet.Parse(read.Bytes);
            set.Source.ShouldBe(fresh.Source, why);
            set.Destination.ShouldBe(fresh.Destination, why);
            set.SourcePort.ShouldBe(fresh.SourcePort, why);
            set.DestinationPort.ShouldBe(fresh.DestinationPort, why);
            set.SourceMac.ShouldBe(fresh.SourceMac, why);
        }
    }

    [Fact]
    public void Where_the_read_back_would_refuse_so_does_the_set()
    {
        // A quoted packet (inside an ICMP error) is not one TryRereadAddresses handles: neither is it here.
        var rnd = new Random(9);
        byte[] inner = RandomPacket(rnd, 0, 8, 0, IpProtocol.Udp);
        byte[] outer = new byte[20 + 8 + inner.Length];
        outer[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(outer.AsSpan(2), (ushort)outer.Length);
        outer[8] = 64;
        outer[9] = IpProtocol.Icmp;
        BinaryPrimitives.WriteUInt32BigEndian(outer.AsSpan(12), 0x0a000001);
        BinaryPrimitives.WriteUInt32BigEndian(outer.AsSpan(16), 0x0a000002);
        outer[20] = 3;
        outer[21] = 3;
        inner.CopyTo(outer, 28);
        Packet quoted = Packet.Parse(outer).QuotedPacket!;
        quoted.TryRereadAddresses(ipChecksumKept: true).ShouldBeFalse();
        quoted.TryAddressRewrittenV4(true, 1, 1).ShouldBeFalse();
        // Bytes changed under the facts (the protocol byte): both refuse (a whole parse follows).
        byte[] a = RandomPacket(rnd, 0, 20, 0, IpProtocol.Tcp);
        Packet p = Packet.Parse(a);
        ushort before = p.SourcePort;
        p.Bytes[9] = IpProtocol.Udp;
        p.TryRereadAddresses(ipChecksumKept: true).ShouldBeFalse();
        p.TryAddressRewrittenV4(true, 1, 1).ShouldBeFalse();
        p.SourcePort.ShouldBe(before);
    }

    [Theory]
    [InlineData(11, IpProtocol.Tcp)]
    [InlineData(12, IpProtocol.Udp)]
    [InlineData(13, IpProtocol.UdpLite)]
    public void The_rewrite_by_reference_writes_the_steps_bytes_at_any_offset_and_header_length(int seed, byte protocol)
    {
        var rnd = new Random(seed);
        int refused = 0;
        for (int i = 0; i < 20_000; i++)
        {
            int offset = rnd.Next(3) == 0 ? rnd.Next(1, 40) : 0;
            int ihl = rnd.Next(4) == 0 ? rnd.Next(0, 16) : 5 + rnd.Next(2) * rnd.Next(11);
            int size = offset + rnd.Next(0, 90);
            var a = new byte[size + rnd.Next(0, 8)];
            rnd.NextBytes(a);
            if (offset < a.Length) a[offset] = (byte)(0x40 | ihl);
            byte[] b = a.ToArray();
            NatManip manip = rnd.Next(2) == 0 ? NatManip.Src : NatManip.Dst;
            uint ip = (uint)rnd.Next() ^ ((uint)rnd.Next(2) << 31);
            ushort port = (ushort)rnd.Next(65536);
            bool expected = Steps(a, offset, size, protocol, ip, port, manip);
            NatPacket.ManipV4(b, offset, size, protocol, ip, port, manip).ShouldBe(expected, $"case {i}");
            b.ShouldBe(a, $"case {i}: offset {offset}, ihl {ihl}, size {size}");
            if (!expected) refused++;
        }
        refused.ShouldBeGreaterThan(0);
    }

    private static byte[] RandomPacket(Random rnd, int options, int transport, int payload, byte protocol)
    {
        int ihl = 20 + options;
        var a = new byte[ihl + transport + payload];
        a[0] = (byte)(0x40 | (ihl / 4));
        BinaryPrimitives.WriteUInt16BigEndian(a.AsSpan(2), (ushort)a.Length);
        a[8] = 64;
        a[9] = protocol;
        rnd.NextBytes(a.AsSpan(12, 8));
        for (int o = 20; o < ihl; o++) a[o] = 1; // NOP options
        rnd.NextBytes(a.AsSpan(ihl));
        if (protocol == IpProtocol.Tcp && transport == 20) a[ihl + 12] = 0x50; // data offset 5
        if (protocol == IpProtocol.Udp) BinaryPrimitives.WriteUInt16BigEndian(a.AsSpan(ihl + 4), (ushort)(transport + payload));
        BinaryPrimitives.WriteUInt16BigEndian(a.AsSpan(10), Checksum.Compute(a.AsSpan(0, ihl)));
        if (rnd.Next(2) == 0) BinaryPrimitives.WriteUInt16BigEndian(a.AsSpan(10), (ushort)rnd.Next(65536));
        return a;
    }

    /// <summary>
    /// The kernel's steps (nf_nat_ipv4_manip_pkt: the transport header at ihl*4, 20 bytes of TCP for its checksum, else 8;
    /// csum_replace per change) with bounds-checked spans, for any header length and offset; false where the kernel drops.
    /// </summary>
    private static bool Steps(byte[] b, int ip, int length, byte protocol, uint newIp, ushort newPort, NatManip manip)
    {
        if (length < ip + 20) return false;
        int hdroff = ip + (b[ip] & 0x0f) * 4;
        int addrOff = ip + (manip == NatManip.Src ? 12 : 16);
        int portOff = hdroff + (manip == NatManip.Src ? 0 : 2);
        uint oldIp = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(addrOff));
        if (protocol == IpProtocol.Tcp)
        {
            int hdrsize = length >= hdroff + 20 ? 20 : 8;
            if (length < hdroff + hdrsize) return false;
            ushort oldPort = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(portOff));
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(portOff), newPort);
            if (hdrsize == 20)
            {
                ushort c = NatPacket.Replace(BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(hdroff + 16)), oldIp, newIp);
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(hdroff + 16), NatPacket.Replace(c, oldPort, newPort));
            }
        }
        else
        {
            if (length < hdroff + 8) return false;
            ushort oldPort = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(portOff));
            ushort check = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(hdroff + 6));
            if (protocol == IpProtocol.UdpLite || check != 0)
            {
                ushort c = NatPacket.Replace(NatPacket.Replace(check, oldIp, newIp), oldPort, newPort);
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(hdroff + 6), c == 0 ? (ushort)0xffff : c);
            }
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(portOff), newPort);
        }
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(ip + 10), NatPacket.Replace(BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(ip + 10)), oldIp, newIp));
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(addrOff), newIp);
        return true;
    }
}
