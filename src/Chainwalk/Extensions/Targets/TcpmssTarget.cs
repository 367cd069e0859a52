using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Routing;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Targets;

/// <summary>Options of <c>-j TCPMSS</c> (struct xt_tcpmss_info).</summary>
public sealed class TcpmssData : ExtensionData
{
    /// <summary>The value XT_TCPMSS_CLAMP_PMTU stands for "clamp to path MTU".</summary>
    public const ushort ClampPmtu = 0xFFFF;

    /// <summary>The MSS to set, or <see cref="ClampPmtu"/>.</summary>
    public ushort Mss;

    public bool Clamp => Mss == ClampPmtu;
}

/// <summary>
/// <c>-j TCPMSS --set-mss N | --clamp-mss-to-pmtu</c> (libxt_TCPMSS.c, xt_TCPMSS.c). Needs <c>-p tcp</c>;
/// clamping only in FORWARD, OUTPUT and POSTROUTING. Through nf_tables the kernel skips its
/// "--tcp-flags SYN" check (par->nft_compat), so iptables-nft accepts the rule without it. Both
/// options may be given; the last one wins.
/// </summary>
public sealed class TcpmssTarget : XtExtension<TcpmssData>
{
    private const int SetMss = 0, ClampMss = 1;

    public override string Name => "TCPMSS";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override ushort RequiredProtocol => Protocols.Tcp;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("set-mss", SetMss),
        new("clamp-mss-to-pmtu", ClampMss, OptionArg.None),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, TcpmssData d)
    {
        if (option.Id == ClampMss)
        {
            d.Mss = TcpmssData.ClampPmtu;
            return;
        }
        ulong max = ushort.MaxValue - (ctx.Family == IpFamily.V4 ? 20UL : 40UL);
        TargetParsing.IntOptionRange(argument!, 0, max, Name, option.Name, out ulong v);
        d.Mss = (ushort)v;
    }

    protected override void FinalCheck(ParseContext ctx, TcpmssData d)
    {
        if (d.Given == 0) throw XtablesException.Param("TCPMSS target: At least one parameter is required");
    }

    protected override void Save(StringBuilder sb, TcpmssData d, IpFamily family)
    {
        if (d.Clamp) sb.Append(" --clamp-mss-to-pmtu");
        else sb.Append(" --set-mss ").Append(TargetParsing.Dec(d.Mss));
    }

    protected override void Print(StringBuilder sb, TcpmssData d, IpFamily family, bool numeric)
    {
        if (d.Clamp) sb.Append(" TCPMSS clamp to PMTU");
        else sb.Append(" TCPMSS set ").Append(TargetParsing.Dec(d.Mss));
    }

    protected override string? CheckEntry(RuleCheckContext ctx, TcpmssData d)
    {
        const HookMask clampHooks = HookMask.Forward | HookMask.Output | HookMask.Postrouting;
        // The kernel tests par->hook_mask, which nf_tables fills in for base chains only.
        if (d.Clamp && (ctx.BaseChainHooks & ~clampHooks) != 0) return RulesetEditor.InvalidArgument;
        return null;
    }

    /// <summary>
    /// xt_TCPMSS.c tcpmss_tg4 / tcpmss_tg6 (tcpmss_mangle_packet). The rule's SYN condition is checked when the
    /// rule is loaded; here every packet the rule matched is treated. A later fragment is left alone; a packet too
    /// short for its TCP header is dropped. The new MSS is --set-mss, or for --clamp-mss-to-pmtu the smaller of the
    /// out route's MTU and the MTU of the route back to the source, less 40 (IPv4) / 60 (IPv6) bytes. An MSS option
    /// is only ever lowered. Without one, and with no data after the header and room in it, the option is added
    /// (with at most 536 / 1220, the defaults a peer assumes) and the packet grows by 4 bytes.
    /// </summary>
    protected override Verdict Execute(PacketContext ctx, TcpmssData data)
    {
        Packet p = ctx.Packet;
        bool v4 = p.Family == IpFamily.V4;
        int tcphoff = TargetEdits.TransportOffset(p, out byte proto);
        if (tcphoff < 0 || (v4 && p.IsNonFirstFragment)) return Verdict.Continue;
        if (proto != IpProtocol.Tcp) return Verdict.Continue;
        byte[] b = p.Bytes;
        int skbLen = Math.Min(p.TotalLength, b.Length);
        int len = skbLen - tcphoff;
        if (len < 20) return Verdict.Drop;
        int hdr = (b[tcphoff + 12] >> 4) * 4;
        if (len < hdr || hdr < 20) return Verdict.Drop;
        int minlen = v4 ? 40 : 60;
        ushort newmss;
        if (data.Clamp)
        {
            uint outMtu = (uint)(ctx.OutDev is { } o ? ctx.Host.FindLink(o)?.Mtu ?? 1500 : 1500);
            RouteResult back = RouteLookup.Output(ctx.Host, new RouteQuery(p.Family, p.Source));
            uint inMtu = back.Ok && back.Device is { } d ? (uint)(ctx.Host.FindLink(d)?.Mtu ?? 1500) : uint.MaxValue;
            uint min = Math.Min(outMtu, inMtu);
            if (min <= minlen)
            {
                ctx.Note($"TCPMSS: unknown or invalid path-MTU ({min}): dropped");
                return Verdict.Drop;
            }
            newmss = (ushort)(min - minlen);
        }
        else
        {
            newmss = data.Mss;
        }
        for (int i = 20; i <= hdr - 4; i += OptLength(b, tcphoff + i))
        {
            int at = tcphoff + i;
            if (b[at] == 2 && b[at + 1] == 4)
            {
                ushort oldmss = (ushort)((b[at + 2] << 8) | b[at + 3]);
                if (oldmss <= newmss) return Verdict.Continue;
                TargetEdits.ReplaceTcpWord(b, tcphoff, i + 2, newmss);
                ctx.Changed($"MSS {oldmss}→{newmss}");
                return Verdict.Continue;
            }
        }
        if (len > hdr || hdr >= 60) return Verdict.Continue;
        newmss = Math.Min(newmss, v4 ? (ushort)536 : (ushort)1220);
        // Insert the option after the fixed header; the checksum is adjusted for the new length, the option and doff.
        byte[] grown = new byte[skbLen + 4];
        b.AsSpan(0, tcphoff + 20).CopyTo(grown);
        grown[tcphoff + 20] = 2;
        grown[tcphoff + 21] = 4;
        grown[tcphoff + 22] = (byte)(newmss >> 8);
        grown[tcphoff + 23] = (byte)newmss;
        b.AsSpan(tcphoff + 20, skbLen - tcphoff - 20).CopyTo(grown.AsSpan(tcphoff + 24));
        ushort check = (ushort)((grown[tcphoff + 16] << 8) | grown[tcphoff + 17]);
        check = TransportChecksum.Replace16(check, (ushort)len, (ushort)(len + 4));
        check = TransportChecksum.Replace32(check, 0, (uint)((2 << 24) | (4 << 16) | newmss));
        ushort oldWord = (ushort)((grown[tcphoff + 12] << 8) | grown[tcphoff + 13]);
        grown[tcphoff + 12] += 0x10;
        ushort newWord = (ushort)((grown[tcphoff + 12] << 8) | grown[tcphoff + 13]);
        check = TransportChecksum.Replace16(check, oldWord, newWord);
        grown[tcphoff + 16] = (byte)(check >> 8);
        grown[tcphoff + 17] = (byte)check;
        if (v4)
        {
            ushort oldLen = (ushort)((grown[2] << 8) | grown[3]);
            ushort newLen = (ushort)(oldLen + 4);
            grown[2] = (byte)(newLen >> 8);
            grown[3] = (byte)newLen;
            TargetEdits.ReplaceIpv4Check(grown, oldLen, newLen);
        }
        else
        {
            ushort pl = (ushort)(((grown[4] << 8) | grown[5]) + 4);
            grown[4] = (byte)(pl >> 8);
            grown[5] = (byte)pl;
        }
        ctx.Skb.Replace(grown);
        ctx.Changed($"MSS option {newmss} added");
        return Verdict.Continue;
    }

    /// <summary>optlen() of xt_TCPMSS.c / xt_TCPOPTSTRIP.c: 1 for EOL, NOP or a zero length.</summary>
    internal static int OptLength(byte[] b, int at) =>
        b[at] <= 1 || at + 1 >= b.Length || b[at + 1] == 0 ? 1 : b[at + 1];
}
