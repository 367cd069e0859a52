using System.Buffers.Binary;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Targets;

/// <summary>The XT_SYNPROXY_OPT_* flags.</summary>
[Flags]
public enum SynproxyOptions : byte
{
    None = 0,
    Mss = 0x01,
    WindowScale = 0x02,
    SackPermitted = 0x04,
    Timestamp = 0x08,
    Ecn = 0x10,
}

/// <summary>Options of <c>-j SYNPROXY</c> (struct xt_synproxy_info: the values are stored as u8 and u16).</summary>
public sealed class SynproxyData : ExtensionData
{
    public SynproxyOptions Options;
    public byte WindowScale;
    public ushort Mss;
}

/// <summary>
/// <c>-j SYNPROXY [--sack-perm] [--timestamp] [--wscale N] [--mss N] [--ecn]</c> (libxt_SYNPROXY.c,
/// xt_SYNPROXY.c). INPUT and FORWARD hooks, <c>-p tcp</c>. --wscale and --mss take 32-bit numbers that
/// the kernel struct truncates to 8 and 16 bits.
/// </summary>
public sealed class SynproxyTarget : XtExtension<SynproxyData>
{
    private const int SackPerm = 0, Timestamp = 1, Wscale = 2, MssId = 3, EcnId = 4;

    public override string Name => "SYNPROXY";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override HookMask Hooks => HookMask.Input | HookMask.Forward;

    public override ushort RequiredProtocol => Protocols.Tcp;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("sack-perm", SackPerm, OptionArg.None),
        new("timestamp", Timestamp, OptionArg.None),
        new("wscale", Wscale),
        new("mss", MssId),
        new("ecn", EcnId, OptionArg.None),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, SynproxyData d)
    {
        switch (option.Id)
        {
            case SackPerm:
                d.Options |= SynproxyOptions.SackPermitted;
                break;
            case Timestamp:
                d.Options |= SynproxyOptions.Timestamp;
                break;
            case Wscale:
                {
                    TargetParsing.IntOptionRange(argument!, 0, uint.MaxValue, Name, option.Name, out ulong v);
                    d.Options |= SynproxyOptions.WindowScale;
                    d.WindowScale = (byte)v;
                    break;
                }
            case MssId:
                {
                    TargetParsing.IntOptionRange(argument!, 0, uint.MaxValue, Name, option.Name, out ulong v);
                    d.Options |= SynproxyOptions.Mss;
                    d.Mss = (ushort)v;
                    break;
                }
            case EcnId:
                d.Options |= SynproxyOptions.Ecn;
                break;
        }
    }

    private static bool Has(SynproxyData d, SynproxyOptions o) => (d.Options & o) != 0;

    protected override void Save(StringBuilder sb, SynproxyData d, IpFamily family)
    {
        if (Has(d, SynproxyOptions.SackPermitted)) sb.Append(" --sack-perm");
        if (Has(d, SynproxyOptions.Timestamp)) sb.Append(" --timestamp");
        if (Has(d, SynproxyOptions.WindowScale)) sb.Append(" --wscale ").Append(TargetParsing.Dec(d.WindowScale));
        if (Has(d, SynproxyOptions.Mss)) sb.Append(" --mss ").Append(TargetParsing.Dec(d.Mss));
        if (Has(d, SynproxyOptions.Ecn)) sb.Append(" --ecn");
    }

    protected override void Print(StringBuilder sb, SynproxyData d, IpFamily family, bool numeric)
    {
        sb.Append(" SYNPROXY ");
        if (Has(d, SynproxyOptions.SackPermitted)) sb.Append("sack-perm ");
        if (Has(d, SynproxyOptions.Timestamp)) sb.Append("timestamp ");
        if (Has(d, SynproxyOptions.WindowScale)) sb.Append("wscale ").Append(TargetParsing.Dec(d.WindowScale)).Append(' ');
        if (Has(d, SynproxyOptions.Mss)) sb.Append("mss ").Append(TargetParsing.Dec(d.Mss)).Append(' ');
        if (Has(d, SynproxyOptions.Ecn)) sb.Append("ecn ");
    }

    /// <summary>The host's syncookie secrets (the kernel's net_secret / syncookie_secret, random at boot).</summary>
    private sealed class CookieSecret
    {
        public uint A;
        public uint B;
    }

    private static readonly ushort[] MssTable = [536, 1300, 1440, 1460];

    /// <summary>
    /// xt_SYNPROXY.c synproxy_tg4 / synproxy_tg6 (nf_synproxy_core.c). A segment with a bad checksum or unreadable
    /// header is dropped. A client's SYN (no ACK/FIN/RST) is answered with a SYN-ACK carrying a syncookie and the
    /// options the rule allows (MSS from --mss, timestamp with the client's window scale, SACK and ECN encoded in
    /// it), and the SYN is stolen. A client's ACK whose cookie is valid is stolen and a SYN carrying the client's
    /// sequence goes on to the server; an invalid cookie drops the ACK. Anything else continues.
    /// </summary>
    /// <remarks>
    /// The cookie has the kernel's layout (a time counter of minutes in the top 8 bits, an MSS table index in the low
    /// 24, on top of keyed hashes of the addresses and ports), but the kernel keys it with siphash and a secret
    /// random at boot, so no value can equal a real kernel's; Chainwalk keys lookup3 with a secret from the host's
    /// random source. The connection-tracking side (sequence adjustment after the server's SYN-ACK) belongs to
    /// conntrack and is not done here.
    /// </remarks>
    protected override Verdict Execute(PacketContext ctx, SynproxyData data)
    {
        Packet p = ctx.Packet;
        bool v4 = p.Family == IpFamily.V4;
        int thoff = TargetEdits.TransportOffset(p, out byte proto);
        if (thoff < 0 || proto != IpProtocol.Tcp) return Verdict.Continue;
        byte[] b = p.Bytes;
        int end = Math.Min(p.TotalLength, b.Length);
        if (end - thoff < 20) return Verdict.Drop;
        ReadOnlySpan<byte> th = b.AsSpan(thoff, end - thoff);
        uint sum = v4 ? Checksum.PseudoV4(p.SourceBytes, p.DestinationBytes, IpProtocol.Tcp, th.Length)
            : Checksum.PseudoV6(p.SourceBytes, p.DestinationBytes, IpProtocol.Tcp, th.Length);
        if (Checksum.Finish(Checksum.Add(sum, th)) != 0) return Verdict.Drop;
        int doff = (th[12] >> 4) * 4;
        if (doff < 20 || doff > th.Length) return Verdict.Drop;
        TcpOptions o = TcpOptions.Parse(th[20..doff]);
        SynproxyOptions opts = SynproxyOptions.None;
        if (o.Mss is not null) opts |= SynproxyOptions.Mss;
        if (o.WindowScale is not null) opts |= SynproxyOptions.WindowScale;
        if (o.TimestampValue is not null) opts |= SynproxyOptions.Timestamp;
        if (o.SackPermitted) opts |= SynproxyOptions.SackPermitted;
        byte flags = th[13];
        bool syn = (flags & 0x02) != 0, ack = (flags & 0x10) != 0, fin = (flags & 0x01) != 0, rst = (flags & 0x04) != 0;
        uint seq = BinaryPrimitives.ReadUInt32BigEndian(th[4..]), ackSeq = BinaryPrimitives.ReadUInt32BigEndian(th[8..]);
        ushort sport = BinaryPrimitives.ReadUInt16BigEndian(th), dport = BinaryPrimitives.ReadUInt16BigEndian(th[2..]);
        CookieSecret secret = ctx.Named("synproxy", "secret", () => new CookieSecret
        {
            A = (uint)ctx.Random.NextInt64(0, 1L << 32),
            B = (uint)ctx.Random.NextInt64(0, 1L << 32),
        });
        uint count = (uint)(ctx.Now / 60);
        if (syn && !(ack || fin || rst))
        {
            if ((flags & 0xc0) == 0xc0) opts |= SynproxyOptions.Ecn;
            opts &= data.Options;
            ushort clientMss = o.Mss ?? 0;
            int mssind = MssTable.Length - 1;
            while (mssind > 0 && clientMss < MssTable[mssind]) mssind--;
            uint cookie = unchecked(Hash(p, sport, dport, 0, secret.A) + seq + (count << 24)
                + ((Hash(p, sport, dport, count, secret.B) + (uint)mssind) & 0x00ff_ffff));
            uint tsval = 0, tsecr = 0;
            byte wscale = o.WindowScale is byte w ? Math.Min(w, (byte)14) : (byte)0;
            if ((opts & SynproxyOptions.Timestamp) != 0)
            {
                tsecr = o.TimestampValue ?? 0;
                tsval = (uint)(long)(ctx.Now * 1000) & ~0x3fu;
                if ((opts & SynproxyOptions.WindowScale) != 0)
                {
                    tsval |= wscale;
                    wscale = data.WindowScale;
                }
                else
                {
                    tsval |= 0xf;
                }
                if ((opts & SynproxyOptions.SackPermitted) != 0) tsval |= 1 << 4;
                if ((opts & SynproxyOptions.Ecn) != 0) tsval |= 1 << 5;
            }
            else
            {
                opts &= ~(SynproxyOptions.WindowScale | SynproxyOptions.SackPermitted | SynproxyOptions.Ecn);
            }
            TcpFlags f = TcpFlags.Syn | TcpFlags.Ack;
            if ((opts & SynproxyOptions.Ecn) != 0) f |= TcpFlags.Ece;
            PacketBuilder reply = Ip(ctx, p.Destination, p.Source, v4).Tcp(dport, sport, f, cookie, unchecked(seq + 1), window: 0);
            AddOptions(reply, opts, data.Mss, wscale, tsval, tsecr);
            ctx.SendLocal(reply.Build());
            ctx.Note("SYNPROXY: SYN answered with a syncookie SYN-ACK; the SYN is stolen");
            return Verdict.Stolen;
        }
        if (ack && !(fin || rst || syn))
        {
            uint cookie = unchecked(ackSeq - 1), sseq = unchecked(seq - 1);
            cookie = unchecked(cookie - (Hash(p, sport, dport, 0, secret.A) + sseq));
            uint diff = (count - (cookie >> 24)) & 0xff;
            uint mssind = diff < 2 ? (cookie - Hash(p, sport, dport, count - diff, secret.B)) & 0x00ff_ffff : uint.MaxValue;
            if (mssind >= MssTable.Length)
            {
                ctx.Note("SYNPROXY: ACK with an invalid syncookie: dropped");
                return Verdict.Drop;
            }
            opts |= SynproxyOptions.Mss;
            uint tsval = o.TimestampValue ?? 0, tsecr = o.TimestampEcho ?? 0;
            byte wscale = 0;
            if ((opts & SynproxyOptions.Timestamp) != 0)
            {
                wscale = (byte)(tsecr & 0xf);
                if (wscale != 0xf) opts |= SynproxyOptions.WindowScale;
                if ((tsecr & (1 << 4)) != 0) opts |= SynproxyOptions.SackPermitted;
                if ((tsecr & (1 << 5)) != 0) opts |= SynproxyOptions.Ecn;
            }
            TcpFlags f = TcpFlags.Syn;
            if ((opts & SynproxyOptions.Ecn) != 0) f |= TcpFlags.Ece | TcpFlags.Cwr;
            ushort window = BinaryPrimitives.ReadUInt16BigEndian(th[14..]);
            PacketBuilder syn2 = Ip(ctx, p.Source, p.Destination, v4).Tcp(sport, dport, f, sseq, unchecked(ackSeq - 1), window);
            AddOptions(syn2, opts, MssTable[mssind], wscale, tsval, tsecr);
            ctx.SendLocal(syn2.Build());
            ctx.Note("SYNPROXY: valid syncookie; the ACK is stolen and a SYN goes to the server");
            return Verdict.Stolen;
        }
        return Verdict.Continue;
    }

    /// <summary>synproxy_build_ip / synproxy_build_ip_ipv6: TOS / traffic class 0, ID 0 with DF, the default TTL / hop limit.</summary>
    private static PacketBuilder Ip(PacketContext ctx, UInt128 src, UInt128 dst, bool v4)
    {
        if (v4)
        {
            byte ttl = byte.TryParse(ctx.Host.GetSysctl("net.ipv4.ip_default_ttl"), out byte t) ? t : (byte)64;
            return PacketBuilder.Ipv4((uint)src, (uint)dst).Ttl(ttl).DontFragment();
        }
        byte hl = byte.TryParse(ctx.Host.GetSysctl("net.ipv6.conf.all.hop_limit"), out byte h) ? h : (byte)64;
        return PacketBuilder.Ipv6(src, dst).Ttl(hl);
    }

    /// <summary>synproxy_build_options: MSS; timestamp (led by SACK-permitted or two NOPs); SACK-permitted alone; window scale.</summary>
    private static void AddOptions(PacketBuilder b, SynproxyOptions opts, ushort mss, byte wscale, uint tsval, uint tsecr)
    {
        if ((opts & SynproxyOptions.Mss) != 0) b.Mss(mss);
        if ((opts & SynproxyOptions.Timestamp) != 0)
        {
            if ((opts & SynproxyOptions.SackPermitted) != 0) b.TcpOption(4);
            else b.TcpOption(1).TcpOption(1);
            Span<byte> ts = stackalloc byte[8];
            BinaryPrimitives.WriteUInt32BigEndian(ts, tsval);
            BinaryPrimitives.WriteUInt32BigEndian(ts[4..], tsecr);
            b.TcpOption(8, ts);
        }
        else if ((opts & SynproxyOptions.SackPermitted) != 0)
        {
            b.TcpOption(1).TcpOption(1).TcpOption(4);
        }
        if ((opts & SynproxyOptions.WindowScale) != 0) b.TcpOption(1).TcpOption(3, [wscale]);
    }

    private static uint Hash(Packet p, ushort sport, ushort dport, uint count, uint key)
    {
        uint s = 0, d = 0;
        ReadOnlySpan<byte> sb = p.SourceBytes, db = p.DestinationBytes;
        for (int i = 0; i < sb.Length; i += 4) s ^= BinaryPrimitives.ReadUInt32BigEndian(sb[i..]);
        for (int i = 0; i < db.Length; i += 4) d ^= BinaryPrimitives.ReadUInt32BigEndian(db[i..]);
        return Jhash.ThreeWords(s, d, ((uint)sport << 16 | dport) ^ count, key);
    }
}
