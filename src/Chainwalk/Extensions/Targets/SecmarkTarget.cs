using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>Options of <c>-j SECMARK</c> (struct xt_secmark_target_info_v1).</summary>
public sealed class SecmarkData : ExtensionData
{
    /// <summary>SECMARK_MODE_SEL = 1 once --selctx is given.</summary>
    public byte Mode;

    /// <summary>The security context, at most 255 bytes.</summary>
    public string Context = string.Empty;
}

/// <summary>
/// <c>-j SECMARK --selctx CTX</c> (libxt_SECMARK.c, xt_SECMARK.c): mangle or security table. The kernel
/// here has no LSM that maps contexts, so every context is refused with ENOENT.
/// </summary>
public sealed class SecmarkTarget : XtExtension<SecmarkData>
{
    public override string Name => "SECMARK";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<string>? Tables => ["mangle", "security"];

    public override IReadOnlyList<XtOption> Options { get; } = [new("selctx", 0, OptionArg.Required, OptFlags.Mandatory)];

    protected override void Init(ParseContext ctx, SecmarkData data) => data.Revision = 1;

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, SecmarkData d)
    {
        d.Context = XtParse.OptString(argument!, size: 256);
        d.Mode = 1;
    }

    protected override void Save(StringBuilder sb, SecmarkData d, IpFamily family) => sb.Append(" --selctx ").Append(d.Context);

    protected override void Print(StringBuilder sb, SecmarkData d, IpFamily family, bool numeric) => sb.Append(" SECMARK selctx ").Append(d.Context);

    protected override string? CheckEntry(RuleCheckContext ctx, SecmarkData d) => CtTarget.NoEntry;

    /// <summary>
    /// xt_SECMARK.c: skb->secmark = the context's security id. The id comes from the LSM when the rule is loaded;
    /// without one (the virtual host has no SELinux / Smack / AppArmor) security_secctx_to_secid yields 0 and the
    /// kernel refuses the rule ("unable to map security context", ENOENT). If such a rule is walked anyway, the
    /// secmark it would write is that 0.
    /// </summary>
    protected override Verdict Execute(PacketContext ctx, SecmarkData data)
    {
        ctx.Skb.Secmark = 0;
        ctx.Note("SECMARK: no security module on the virtual host; the kernel would not have loaded this rule");
        return Verdict.Continue;
    }
}
