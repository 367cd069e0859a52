namespace Chainwalk.Rules;

/// <summary>
/// Told of each change <see cref="RulesetEditor"/> makes to a chain's rules, right after it is made (the chain's
/// <see cref="Chain.Edits"/> already counts it): the compiled form that indexed the chain keeps in step without a rebuild.
/// </summary>
public interface IChainEdits
{
    /// <summary>A rule was inserted at <paramref name="position"/> (0-based, where it now is; an append is one at the end).</summary>
    void Inserted(Chain chain, int position);

    /// <summary>The rule at <paramref name="position"/> (0-based) was replaced.</summary>
    void Replaced(Chain chain, int position);

    /// <summary>The rule at <paramref name="position"/> (0-based, as it was) was deleted.</summary>
    void Deleted(Chain chain, int position);

    /// <summary>Every rule of the chain was removed (<c>-F</c>, or a restore's <c>:CHAIN</c> of an existing user chain).</summary>
    void Cleared(Chain chain);
}
