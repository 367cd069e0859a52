using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Targets;

/// <summary>The IPT_ECN_OP_* operations of <c>-j ECN</c>.</summary>
[Flags]
public enum EcnOperation : byte
{
    None = 0,
    SetIp = 0x01,
    SetEce = 0x10,
    SetCwr = 0x20,
}

/// <summary>Options of <c>-j ECN</c> (struct ipt_ECN_info).</summary>
public sealed class EcnData : ExtensionData
{
    public EcnOperation Operation;

    /// <summary>The ECT code point (0-3) to write into the IP header.</summary>
    public byte IpEct;

    /// <summary>The TCP ECE and CWR bits to write (0 or 1).</summary>
    public byte Ece;
    public byte Cwr;

    /// <summary>--ecn-tcp-remove: clear both TCP bits.</summary>
    public bool IsTcpRemove => Operation == (EcnOperation.SetEce | EcnOperation.SetCwr) && Ece == 0 && Cwr == 0;
}

/// <summary>
/// <c>-j ECN --ecn-tcp-remove</c> (and the hidden --ecn-tcp-cwr/--ecn-tcp-ece/--ecn-ip-ect) for IPv4
/// (libipt_ECN.c, ipt_ECN.c). mangle table; the TCP operations need <c>-p tcp</c>.
/// </summary>
public sealed class EcnTarget : XtExtension<EcnData>
{
    private const int TcpRemove = 0, TcpCwr = 1, TcpEce = 2, IpEct = 3;

    public override string Name => "ECN";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override FamilyMask Families => FamilyMask.V4;

    public override IReadOnlyList<string>? Tables { get; } = ["mangle"];

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("ecn-tcp-remove", TcpRemove, OptionArg.None),
        new("ecn-tcp-cwr", TcpCwr),
        new("ecn-tcp-ece", TcpEce),
        new("ecn-ip-ect", IpEct),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, EcnData d)
    {
        switch (option.Id)
        {
            case TcpRemove:
                d.Operation = EcnOperation.SetEce | EcnOperation.SetCwr;
                d.Ece = 0;
                d.Cwr = 0;
                break;
            case TcpCwr:
                {
                    TargetParsing.IntOptionRange(argument!, 0, 1, Name, option.Name, out ulong v);
                    d.Operation |= EcnOperation.SetCwr;
                    d.Cwr = (byte)v;
                    break;
                }
            case TcpEce:
                {
                    TargetParsing.IntOptionRange(argument!, 0, 1, Name, option.Name, out ulong v);
                    d.Operation |= EcnOperation.SetEce;
                    d.Ece = (byte)v;
                    break;
                }
            case IpEct:
                {
                    TargetParsing.IntOptionRange(argument!, 0, 3, Name, option.Name, out ulong v);
                    d.Operation |= EcnOperation.SetIp;
                    d.IpEct = (byte)v;
                    break;
                }
        }
    }

    protected override void FinalCheck(ParseContext ctx, EcnData d)
    {
        if (d.Given == 0) throw XtablesException.Param("ECN target: An operation is required");
        const ulong cwr = 1UL << TcpCwr, ece = 1UL << TcpEce, remove = 1UL << TcpRemove;
        TargetParsing.OptionsFcheck(Name, d.Given,
        [
            (TcpRemove, "ecn-tcp-remove", false, cwr | ece, 0),
            (TcpCwr, "ecn-tcp-cwr", false, remove, 0),
            (TcpEce, "ecn-tcp-ece", false, remove, 0),
            (IpEct, "ecn-ip-ect", false, 0, 0),
        ]);
    }

    protected override void Save(StringBuilder sb, EcnData d, IpFamily family)
    {
        if (d.IsTcpRemove)
        {
            sb.Append(" --ecn-tcp-remove");
            return;
        }
        if ((d.Operation & EcnOperation.SetEce) != 0) sb.Append(" --ecn-tcp-ece ").Append(TargetParsing.Dec(d.Ece));
        if ((d.Operation & EcnOperation.SetCwr) != 0) sb.Append(" --ecn-tcp-cwr ").Append(TargetParsing.Dec(d.Cwr));
        if ((d.Operation & EcnOperation.SetIp) != 0) sb.Append(" --ecn-ip-ect ").Append(TargetParsing.Dec(d.IpEct));
    }

    protected override void Print(StringBuilder sb, EcnData d, IpFamily family, bool numeric)
    {
        sb.Append(" ECN");
        if (d.IsTcpRemove)
        {
            sb.Append(" TCP remove");
            return;
        }
        if ((d.Operation & EcnOperation.SetEce) != 0) sb.Append(" ECE=").Append(TargetParsing.Dec(d.Ece));
        if ((d.Operation & EcnOperation.SetCwr) != 0) sb.Append(" CWR=").Append(TargetParsing.Dec(d.Cwr));
        if ((d.Operation & EcnOperation.SetIp) != 0) sb.Append(" ECT codepoint=").Append(TargetParsing.Dec(d.IpEct));
    }

    protected override string? CheckEntry(RuleCheckContext ctx, EcnData d)
    {
        bool tcpOps = (d.Operation & (EcnOperation.SetEce | EcnOperation.SetCwr)) != 0;
        if (tcpOps && (ctx.Rule.Protocol != Protocols.Tcp || ctx.Rule.ProtocolInverted)) return RulesetEditor.InvalidArgument;
        return null;
    }

    /// <summary>
    /// ipt_ECN.c ecn_tg: the IP ECT bits when asked and different; then for TCP the ECE / CWR bits (the flag word
    /// rewritten with an incremental checksum update). Like the kernel it does not look at the fragment offset:
    /// in a later fragment the bytes where a TCP header would be are changed. A packet too short for a TCP header
    /// is dropped.
    /// </summary>
    protected override Verdict Execute(PacketContext ctx, EcnData data)
    {
        Packet p = ctx.Packet;
        byte[] b = p.Bytes;
        bool changed = false;
        if ((data.Operation & EcnOperation.SetIp) != 0 && (b[1] & 3) != (data.IpEct & 3))
        {
            TargetEdits.SetDsField(p, (byte)((b[1] & ~3) | (data.IpEct & 3)));
            changed = true;
        }
        if ((data.Operation & (EcnOperation.SetEce | EcnOperation.SetCwr)) != 0 && p.Protocol == IpProtocol.Tcp)
        {
            int th = p.IpHeaderLength;
            if (Math.Min(p.TotalLength, b.Length) - th < 20)
            {
                if (changed) ctx.Changed("ECN bits");
                return Verdict.Drop;
            }
            int flags = b[th + 13];
            int nf = flags;
            if ((data.Operation & EcnOperation.SetEce) != 0) nf = data.Ece != 0 ? nf | 0x40 : nf & ~0x40;
            if ((data.Operation & EcnOperation.SetCwr) != 0) nf = data.Cwr != 0 ? nf | 0x80 : nf & ~0x80;
            if (nf != flags)
            {
                TargetEdits.ReplaceTcpWord(b, th, 12, (ushort)((b[th + 12] << 8) | nf));
                changed = true;
            }
        }
        if (changed) ctx.Changed("ECN bits");
        return Verdict.Continue;
    }
}
