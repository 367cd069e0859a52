using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Targets;

/// <summary>The record type AUDIT writes (XT_AUDIT_TYPE_*).</summary>
public enum AuditType : byte
{
    Accept = 0,
    Drop = 1,
    Reject = 2,
}

/// <summary>Options of <c>-j AUDIT</c> (struct xt_audit_info).</summary>
public sealed class AuditData : ExtensionData
{
    public AuditType Type;
}

/// <summary><c>-j AUDIT --type accept|drop|reject</c> (libxt_AUDIT.c, xt_AUDIT.c); the type is case-insensitive.</summary>
public sealed class AuditTarget : XtExtension<AuditData>
{
    public override string Name => "AUDIT";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<XtOption> Options { get; } = [new("type", 0, OptionArg.Required, OptFlags.Mandatory)];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, AuditData d)
    {
        string arg = argument!;
        if (string.Equals(arg, "accept", StringComparison.OrdinalIgnoreCase)) d.Type = AuditType.Accept;
        else if (string.Equals(arg, "drop", StringComparison.OrdinalIgnoreCase)) d.Type = AuditType.Drop;
        else if (string.Equals(arg, "reject", StringComparison.OrdinalIgnoreCase)) d.Type = AuditType.Reject;
        else throw ctx.Error($"Bad action type value \"{arg}\"");
    }

    private static string TypeName(AuditType t) => t switch
    {
        AuditType.Accept => "accept",
        AuditType.Drop => "drop",
        _ => "reject",
    };

    protected override void Save(StringBuilder sb, AuditData d, IpFamily family) => sb.Append(" --type ").Append(TypeName(d.Type));

    protected override void Print(StringBuilder sb, AuditData d, IpFamily family, bool numeric) => sb.Append(" AUDIT ").Append(TypeName(d.Type));

    /// <summary>
    /// xt_AUDIT.c audit_tg: an AUDIT_NETFILTER_PKT (1324) record <c>mark=%#x saddr= daddr= proto=</c> (IPv6: the
    /// upper-layer protocol after the extension headers). Logged as the kernel prints it without auditd,
    /// <c>audit: type=1324 audit(TIME:SERIAL): …</c>, the time stamp left out as for LOG. The --type option is
    /// not used by the kernel. The packet continues.
    /// </summary>
    protected override Verdict Execute(PacketContext ctx, AuditData data)
    {
        Packet p = ctx.Packet;
        uint mark = ctx.Skb.Mark;
        string proto;
        if (p.Family == IpFamily.V4)
        {
            proto = TargetEdits.Dec(p.Bytes[9]);
        }
        else
        {
            (_, byte next, _) = IcmpErrors.Ipv6Upper(p.Bytes.AsSpan(0, Math.Min(p.TotalLength, p.Bytes.Length)));
            proto = TargetEdits.Dec(next);
        }
        ctx.Log("audit: type=1324 mark=" + (mark == 0 ? "0" : TargetEdits.Hex(mark))
            + " saddr=" + IpNet.FormatAddress(p.Source, p.Family) + " daddr=" + IpNet.FormatAddress(p.Destination, p.Family)
            + " proto=" + proto, 5); // no audit daemon: audit_printk_skb's pr_notice
        return Verdict.Continue;
    }
}
