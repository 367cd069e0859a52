using Chainwalk.Rules;

namespace Chainwalk.Extensions.Targets;

/// <summary><c>-j SNPT --src-pfx P/L --dst-pfx P/L</c>: source prefix translation; mangle INPUT and POSTROUTING.</summary>
public sealed class SnptTarget : NptTargetBase
{
    public override string Name => "SNPT";

    public override HookMask Hooks => HookMask.Input | HookMask.Postrouting;

    protected override bool Source => true;
}
