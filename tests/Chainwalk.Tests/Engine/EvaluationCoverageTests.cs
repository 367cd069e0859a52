using System.Reflection;
using Chainwalk.Engine;
using Chainwalk.Extensions;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>Every extension Chainwalk parses is evaluated on packets, or refused at load time as the kernel here refuses it.</summary>
public class EvaluationCoverageTests
{
    private static bool Overrides(XtExtension e, string method)
    {
        for (Type? t = e.GetType(); t is not null && t != typeof(XtExtension); t = t.BaseType)
        {
            if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(XtExtension<>)) return false;
            MethodInfo? m = t.GetMethod(method, BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.DeclaredOnly,
                [typeof(PacketContext), t.BaseType!.IsGenericType ? t.BaseType.GetGenericArguments()[0] : typeof(ExtensionData)]);
            if (m is not null) return true;
            if (t.GetMethods(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.DeclaredOnly).Any(x => x.Name == method && x.GetParameters().Length == 2 && x.GetParameters()[0].ParameterType == typeof(PacketContext)))
                return true;
        }
        return false;
    }

    /// <summary>Extensions whose every rule the kernel here refuses at load time (ENOENT: no such module), so no packet meets them.</summary>
    private static readonly string[] AlwaysRefused = ["ipvs", "LED"];

    [Fact]
    public void Every_supported_extension_is_evaluated()
    {
        var missing = ExtensionRegistry.All
            .Where(e => e.KernelSupported && !AlwaysRefused.Contains(e.Name))
            .Where(e => !Overrides(e, e.Kind == ExtensionKind.Match ? "Match" : "Execute"))
            .Select(e => (e.Kind == ExtensionKind.Match ? "-m " : "-j ") + e.Name + " (" + e.Families + ")")
            .OrderBy(x => x, StringComparer.Ordinal)
            .ToList();
        missing.ShouldBeEmpty("not evaluated: " + string.Join(", ", missing));
    }
}
